// Package protocol is the graftlb Hypertube frame protocol: the frame codec,
// its TCP and WebSocket bindings, error codes, and the CBOR value codec for
// arguments and results. SPEC.md in this directory gives the exact bytes.
//
// The header carries everything routing needs (type, flags, call id,
// session id, object id, deadline, target, trace context) at fixed offsets
// or behind one-byte lengths, so a proxy routes and rewrites frames without
// decoding a body and without allocating: Decode fills a Frame with views
// into the buffer, AppendFrame encodes into the caller's buffer, and the
// Set* functions patch fields in place.
//
// Conn reads frames on its owner's goroutine and writes them in batches
// (Writer): on the flushing goroutine while the socket takes them at once,
// else from a goroutine started for what waits, so that many senders share
// one socket without blocking on it, an idle connection has one goroutine
// (its reader), and a peer that stops reading is cut off instead of
// stalling everyone else. A reader that queues what it handles on a Batch
// writes each destination once for all the frames of one read.
//
// This package imports nothing else of graftlb.
package protocol
