package protocol

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrSlowPeer is returned by a non-blocking Writer when the peer does not
// read fast enough: more than Limits.MaxPendingWrite bytes would wait.
var ErrSlowPeer = errors.New("protocol: peer is not reading; write queue full")

// ErrWriterClosed is returned for writes after Close or after a failed write.
var ErrWriterClosed = errors.New("protocol: connection closed")

// batchSink writes a batch of length-prefixed frames to the peer in the
// binding's own framing.
type batchSink interface {
	writeBatch(b []byte) error
}

// Writer queues frames for one connection and writes them in batches from a
// goroutine it owns: concurrent senders never block on the socket, and
// frames queued while a write is in progress go out together in the next.
//
// When the queue is full, a blocking Writer makes senders wait (a proxy
// forwarding to a gateway pushes back on the client that sends too fast); a
// non-blocking one fails with ErrSlowPeer (a peer that does not read its
// events must not stall the sender).
type Writer struct {
	sink       batchSink
	maxPending int
	done       chan struct{}

	// backlog mirrors len(pending) for lock-free readers (Backlog).
	backlog atomic.Int64

	mu      sync.Mutex
	cond    sync.Cond
	block   bool   // senders wait for room instead of failing
	pending []byte // length-prefixed frames waiting to be written
	spare   []byte // the buffer of the batch being written, reused
	closing bool
	err     error
}

func newWriter(sink batchSink, maxPending int, block bool) *Writer {
	w := &Writer{sink: sink, maxPending: maxPending, block: block, done: make(chan struct{})}
	w.cond.L = &w.mu
	go w.run()
	return w
}

// WriteFrame queues an encoded frame. It copies b, so b may be reused as
// soon as it returns.
func (w *Writer) WriteFrame(b []byte) error {
	w.mu.Lock()
	if err := w.reserveLocked(4 + len(b)); err != nil {
		w.mu.Unlock()
		return err
	}
	w.pending = binary.BigEndian.AppendUint32(w.pending, uint32(len(b)))
	w.pending = append(w.pending, b...)
	w.backlog.Store(int64(len(w.pending)))
	w.mu.Unlock()
	w.cond.Broadcast()
	return nil
}

// Send encodes f straight into the queue.
func (w *Writer) Send(f *Frame) error {
	n := f.Size()
	w.mu.Lock()
	if err := w.reserveLocked(4 + n); err != nil {
		w.mu.Unlock()
		return err
	}
	start := len(w.pending)
	w.pending = binary.BigEndian.AppendUint32(w.pending, uint32(n))
	var err error
	w.pending, err = AppendFrame(w.pending, f)
	if err != nil {
		w.pending = w.pending[:start]
	}
	w.backlog.Store(int64(len(w.pending)))
	w.mu.Unlock()
	if err == nil {
		w.cond.Broadcast()
	}
	return err
}

func (w *Writer) reserveLocked(n int) error {
	for {
		if w.closing {
			if w.err != nil {
				return w.err
			}
			return ErrWriterClosed
		}
		if len(w.pending) == 0 || len(w.pending)+n <= w.maxPending {
			return nil
		}
		if !w.block {
			w.err = ErrSlowPeer
			w.closing = true
			w.cond.Broadcast()
			return ErrSlowPeer
		}
		w.cond.Wait()
	}
}

// SetBlockWhenFull switches between the two policies for a full queue (see
// Writer): a server that learns from HELLO that its peer is a proxy makes
// that connection's senders wait rather than cut a connection many
// clients share.
func (w *Writer) SetBlockWhenFull(block bool) {
	w.mu.Lock()
	w.block = block
	w.mu.Unlock()
	w.cond.Broadcast()
}

// Pending returns the number of bytes queued and not yet handed to the
// socket.
func (w *Writer) Pending() int { return int(w.backlog.Load()) }

// Close writes what is queued (each write bounded by the write timeout),
// stops the writer goroutine and waits for it. It returns the first write
// error, if any.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.cond.Broadcast()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == ErrSlowPeer {
		return nil
	}
	return w.err
}

// Done is closed when the writer goroutine has stopped: after Close, after
// a failed write, or after the queue overflowed.
func (w *Writer) Done() <-chan struct{} { return w.done }

// Err returns the error that stopped the writer, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// maxSpare bounds the batch buffer kept for reuse after a burst.
const maxSpare = 1 << 20

func (w *Writer) run() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.pending) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.pending) == 0 || (w.closing && w.err != nil) {
			w.pending = nil
			w.cond.Broadcast()
			return
		}
		batch := w.pending
		w.pending, w.spare = w.spare[:0], nil
		w.backlog.Store(0)
		w.cond.Broadcast() // room for blocked senders
		w.mu.Unlock()
		err := w.sink.writeBatch(batch)
		w.mu.Lock()
		if cap(batch) <= maxSpare {
			w.spare = batch[:0]
		}
		if err != nil {
			if w.err == nil {
				w.err = err
			}
			w.closing = true
		}
	}
}
