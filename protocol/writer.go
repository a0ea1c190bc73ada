package protocol

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrSlowPeer is returned by a non-blocking Writer when the peer does not
// read fast enough: more than Limits.MaxPendingWrite bytes would wait.
var ErrSlowPeer = errors.New("protocol: peer is not reading; write queue full")

// ErrWriterClosed is returned for writes after Close or after a failed write.
var ErrWriterClosed = errors.New("protocol: connection closed")

// batchSink writes batches of frames, already in the binding's framing,
// to the peer.
type batchSink interface {
	// tryWrite writes what the socket takes of b at once, without
	// waiting: n < len(b) with a nil error means the rest must wait.
	tryWrite(b []byte) (n int, err error)
	// write writes all of b, waiting up to the write timeout.
	write(b []byte) error
	// abort closes the socket at once: a write in progress fails and the
	// owner's blocked reader wakes with an error.
	abort()
}

// inlineRounds is how many batches one Flush writes itself when other
// senders keep queueing while it writes; what they queue after that goes
// to a flusher goroutine, so that a busy writer never holds a reader.
const inlineRounds = 2

// Writer queues frames for one connection and writes them in batches.
// WriteFrame and Send queue a frame and flush; Queue queues it only, for a
// reader that handles every frame of one read and then flushes each
// destination once (see Batch). Frames queued by any sender while a write
// is in progress go out with the next batch.
//
// A flush writes on the caller's goroutine while the socket takes the
// batch without waiting (one non-blocking write); what it does not take is
// written by a goroutine started for it, which waits for the peer up to the
// write timeout and ends when the queue is empty. So senders never block on
// the socket, and an idle connection has no writer goroutine.
//
// When the queue is full, a blocking Writer makes senders wait (a proxy
// forwarding to a gateway pushes back on the client that sends too fast); a
// non-blocking one fails with ErrSlowPeer (a peer that does not read its
// events must not stall the sender).
//
// The queue limit (Limits.MaxPendingWrite) counts the bytes queued and
// those of the batch being written: all wait for the peer to read them.
//
// A peer that does not read is cut off: when a non-blocking queue
// overflows, or a batch is not written within the write timeout (or fails),
// the writer stops, drops what is queued and closes the socket, so that
// the owner's reader wakes with an error and the owner's cleanup runs. The
// heap a connection's writer holds for a peer that does not read is thus
// bounded by the queue limit (or one frame, if larger), plus the rounding
// of pooled buffers for queues of up to 2 MiB (a third at worst), for at
// most the write timeout per batch; the kernel's socket send buffer comes
// on top. Buffers go back to their pool (or to the garbage collector) when
// a batch is written: an idle writer holds none.
type Writer struct {
	sink       batchSink
	framing    framing
	maxPending int
	done       chan struct{}
	abortOnce  sync.Once

	// backlog mirrors len(pending) for lock-free readers (Pending).
	backlog atomic.Int64

	mu        sync.Mutex
	cond      sync.Cond
	block     bool       // senders wait for room instead of failing
	pending   []byte     // framed frames waiting to be written
	pbuf      *pooledBuf // the buffer under pending, if any
	writing   bool       // a batch is being written: by a flush or a flusher goroutine
	inflight  int        // bytes of the batch being written
	flightCap int        // size of its buffer
	closing   bool
	stopped   bool // done is closed: closing, and no write in progress
	err       error
}

func newWriter(sink batchSink, fr framing, maxPending int, block bool) *Writer {
	w := &Writer{sink: sink, framing: fr, maxPending: maxPending, block: block, done: make(chan struct{})}
	w.cond.L = &w.mu
	return w
}

// WriteFrame queues an encoded frame and flushes. It copies b, so b may be
// reused as soon as it returns.
func (w *Writer) WriteFrame(b []byte) error { return w.put(b, nil, true) }

// Queue queues an encoded frame without writing it: it goes out at the
// next Flush, or with a batch another sender flushes. It copies b.
func (w *Writer) Queue(b []byte) error { return w.put(b, nil, false) }

// Send encodes f straight into the queue and flushes.
func (w *Writer) Send(f *Frame) error { return w.put(nil, f, true) }

// put queues b, or f when it is not nil, and flushes if flush is set.
func (w *Writer) put(b []byte, f *Frame, flush bool) error {
	w.mu.Lock()
	var err error
	if f != nil {
		err = w.sendLocked(f)
	} else {
		err = w.queueLocked(b)
	}
	if err != nil {
		w.mu.Unlock()
		w.failed(err)
		return err
	}
	if flush {
		w.flushLocked()
	} else {
		w.mu.Unlock()
	}
	return nil
}

func (w *Writer) queueLocked(b []byte) error {
	if err := w.reserveLocked(w.framing.headerLen(len(b)) + len(b)); err != nil {
		return err
	}
	start := len(w.pending)
	w.pending = w.framing.appendHeader(w.pending, len(b))
	w.pending = append(w.pending, b...)
	w.framing.seal(w.pending[start:])
	w.backlog.Store(int64(len(w.pending)))
	return nil
}

func (w *Writer) sendLocked(f *Frame) error {
	n := f.Size()
	if err := w.reserveLocked(w.framing.headerLen(n) + n); err != nil {
		return err
	}
	start := len(w.pending)
	w.pending = w.framing.appendHeader(w.pending, n)
	var err error
	if w.pending, err = AppendFrame(w.pending, f); err != nil {
		w.pending = w.pending[:start]
		return err
	}
	w.framing.seal(w.pending[start:])
	w.backlog.Store(int64(len(w.pending)))
	return nil
}

// control queues a WebSocket control frame (a pong) and flushes.
func (w *Writer) control(op byte, payload string) error {
	w.mu.Lock()
	if err := w.reserveLocked(wsMaxHeader + len(payload)); err != nil {
		w.mu.Unlock()
		w.failed(err)
		return err
	}
	start := len(w.pending)
	w.pending = w.framing.appendWSHeader(w.pending, op, len(payload))
	w.pending = append(w.pending, payload...)
	w.framing.seal(w.pending[start:])
	w.backlog.Store(int64(len(w.pending)))
	w.flushLocked()
	return nil
}

func (w *Writer) reserveLocked(n int) error {
	for {
		if w.closing {
			if w.err != nil {
				return w.err
			}
			return ErrWriterClosed
		}
		// The batch being written counts: its bytes wait for the peer too.
		if queued := len(w.pending) + w.inflight; queued == 0 || queued+n <= w.maxPending {
			w.roomLocked(n)
			return nil
		}
		if !w.block {
			w.failLocked(ErrSlowPeer)
			return ErrSlowPeer
		}
		if !w.writing {
			// What fills the queue was queued without a flush (a batch
			// not flushed yet): write it, or this sender waits forever.
			w.startFlusherLocked()
		}
		w.cond.Wait()
	}
}

// roomLocked makes pending able to take n more bytes without append
// allocating: a larger buffer comes from the pool, or past the pooled
// sizes (a backlog) is allocated at twice the size, up to the queue limit.
func (w *Writer) roomLocked(n int) {
	need := len(w.pending) + n
	if need <= cap(w.pending) {
		return
	}
	size := need
	if _, c := classOf(need); c > 1<<maxClassShift {
		size = max(min(2*cap(w.pending), w.maxPending), need)
	}
	p := getBuf(size)
	w.pending = append(p.b[:0], w.pending...)
	putBuf(w.pbuf)
	w.pbuf = p
}

// dropLocked discards what is queued.
func (w *Writer) dropLocked() {
	putBuf(w.pbuf)
	w.pending, w.pbuf = nil, nil
	w.backlog.Store(0)
}

// takeLocked hands the queue over as the batch to write.
func (w *Writer) takeLocked() ([]byte, *pooledBuf) {
	batch, buf := w.pending, w.pbuf
	w.pending, w.pbuf = nil, nil
	w.writing, w.inflight, w.flightCap = true, len(batch), cap(batch)
	w.backlog.Store(0)
	return batch, buf
}

// wroteLocked records that the batch in flight is written (or failed).
func (w *Writer) wroteLocked(err error) {
	w.writing, w.inflight, w.flightCap = false, 0, 0
	if err != nil {
		w.failLocked(err)
	} else if w.err != nil {
		w.stopLocked() // it failed while this write was in progress
	}
	w.cond.Broadcast() // room for blocked senders; Close may go on
}

// failLocked stops the writer on err: what is queued is dropped and
// senders get err from now on.
func (w *Writer) failLocked(err error) {
	if w.err == nil {
		w.err = err
	}
	w.closing = true
	w.dropLocked()
	w.stopLocked()
	w.cond.Broadcast()
}

// stopLocked closes done once no write is in progress.
func (w *Writer) stopLocked() {
	if !w.stopped && !w.writing {
		w.stopped = true
		close(w.done)
	}
}

// Flush writes what is queued, unless a write is in progress: that one
// takes it next. It never waits for the peer (see Writer).
func (w *Writer) Flush() {
	w.mu.Lock()
	w.flushLocked()
}

// flushLocked is Flush with w.mu held; it returns with w.mu released.
func (w *Writer) flushLocked() {
	for round := 0; ; round++ {
		if w.writing || w.closing || len(w.pending) == 0 {
			// A write in progress takes the queue next; Close writes
			// what is left of a closing writer's.
			w.mu.Unlock()
			return
		}
		if round == inlineRounds {
			w.startFlusherLocked()
			w.mu.Unlock()
			return
		}
		batch, buf := w.takeLocked()
		w.mu.Unlock()
		n, err := w.sink.tryWrite(batch)
		if err == nil && n < len(batch) {
			go w.flusher(batch[n:], buf) // the socket is full: wait off this goroutine
			return
		}
		putBuf(buf)
		if err != nil {
			w.failed(err)
		}
		w.mu.Lock()
		w.wroteLocked(err)
	}
}

// startFlusherLocked hands the queue to a flusher goroutine.
func (w *Writer) startFlusherLocked() {
	batch, buf := w.takeLocked()
	go w.flusher(batch, buf)
}

// flusher writes rest (the part of a batch the socket did not take at
// once), then what is queued meanwhile, each write bounded by the write
// timeout, and ends when the queue is empty.
func (w *Writer) flusher(rest []byte, buf *pooledBuf) {
	for {
		if err := w.writeOut(rest, buf); err != nil || len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		rest, buf = w.takeLocked()
		w.mu.Unlock()
	}
}

// writeOut writes a batch taken from the queue, waiting up to the write
// timeout, with w.mu not held, and records it; it returns with w.mu held.
func (w *Writer) writeOut(batch []byte, buf *pooledBuf) error {
	err := w.sink.write(batch)
	putBuf(buf)
	if err != nil {
		w.failed(err)
	}
	w.mu.Lock()
	w.wroteLocked(err)
	return err
}

// failed closes the socket once the writer has stopped on an error: the
// queue overflowed or a write failed. err is what a sender or a write
// just got.
func (w *Writer) failed(err error) {
	if err == ErrWriterClosed {
		return // closed by its owner, not failed
	}
	w.abortOnce.Do(w.sink.abort)
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
// socket (not counting the batch being written).
func (w *Writer) Pending() int { return int(w.backlog.Load()) }

// Close waits for a write in progress, writes what is queued (bounded by
// the write timeout) and stops the writer. It returns the first write
// error, if any; a write that fails closes the socket.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closing = true
	w.cond.Broadcast() // blocked senders give up
	for w.writing {
		w.cond.Wait()
	}
	if w.err == nil && len(w.pending) > 0 {
		batch, buf := w.takeLocked()
		w.mu.Unlock()
		_ = w.writeOut(batch, buf)
	}
	w.dropLocked()
	w.stopLocked()
	if w.err == ErrSlowPeer {
		return nil
	}
	return w.err
}

// Done is closed when the writer has stopped: after Close, after a failed
// write, or after the queue overflowed (the socket is closed in the last
// two cases).
func (w *Writer) Done() <-chan struct{} { return w.done }

// Err returns the error that stopped the writer, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// retained returns the bytes of buffer the writer holds: the queue and the
// batch being written.
func (w *Writer) retained() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return cap(w.pending) + w.flightCap
}

// Batch collects the writers that one reader's frames were queued on, so
// that a reader handles every frame of one read and then writes each
// destination once (Flush). It belongs to that reader's goroutine. A nil
// *Batch writes at once: its Queue is WriteFrame then.
type Batch struct {
	dirty []*Writer
}

// Queue queues raw on w, to be written at Flush.
func (b *Batch) Queue(w *Writer, raw []byte) error {
	if err := w.put(raw, nil, b == nil); err != nil || b == nil {
		return err
	}
	b.add(w)
	return nil
}

func (b *Batch) add(w *Writer) {
	for _, d := range b.dirty {
		if d == w {
			return
		}
	}
	b.dirty = append(b.dirty, w)
}

// Flush flushes every writer queued on since the last Flush; a nil b has
// none.
func (b *Batch) Flush() {
	if b == nil {
		return
	}
	for i, w := range b.dirty {
		w.Flush()
		b.dirty[i] = nil
	}
	b.dirty = b.dirty[:0]
}

// pending reports whether frames were queued since the last Flush.
func (b *Batch) pending() bool { return b != nil && len(b.dirty) > 0 }

// flushLate is Flush for a reader about to wait: it first lets the
// goroutines that are ready run (other readers, which may queue on the
// same writers and then yield too), so that one write carries the frames
// of several reads.
func (b *Batch) flushLate() {
	if !b.pending() {
		return
	}
	runtime.Gosched()
	b.Flush()
}
