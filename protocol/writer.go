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
	// abort closes the socket at once: a write in progress fails and the
	// owner's blocked reader wakes with an error.
	abort()
}

// Writer queues frames for one connection and writes them in batches from a
// goroutine it owns: concurrent senders never block on the socket, and
// frames queued while a write is in progress go out together in the next.
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
	maxPending int
	done       chan struct{}
	abortOnce  sync.Once

	// backlog mirrors len(pending) for lock-free readers (Backlog).
	backlog atomic.Int64

	mu        sync.Mutex
	cond      sync.Cond
	block     bool       // senders wait for room instead of failing
	pending   []byte     // length-prefixed frames waiting to be written
	pbuf      *pooledBuf // the buffer under pending, if any
	inflight  int        // bytes of the batch being written
	flightCap int        // size of its buffer
	closing   bool
	err       error
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
		w.stopped(err)
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
		w.stopped(err)
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
		// The batch being written counts: its bytes wait for the peer too.
		if queued := len(w.pending) + w.inflight; queued == 0 || queued+n <= w.maxPending {
			w.roomLocked(n)
			return nil
		}
		if !w.block {
			w.err = ErrSlowPeer
			w.closing = true
			w.dropLocked()
			w.cond.Broadcast()
			return ErrSlowPeer
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

// stopped closes the socket once the writer has stopped on an error: the
// queue overflowed or a write failed. err is what a sender or the writer
// goroutine just got.
func (w *Writer) stopped(err error) {
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

// Close writes what is queued (each write bounded by the write timeout),
// stops the writer goroutine and waits for it. It returns the first write
// error, if any; a write that fails closes the socket.
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
// a failed write, or after the queue overflowed (the socket is closed in
// the last two cases).
func (w *Writer) Done() <-chan struct{} { return w.done }

// Err returns the error that stopped the writer, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) run() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.pending) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.pending) == 0 || (w.closing && w.err != nil) {
			w.dropLocked()
			w.cond.Broadcast()
			return
		}
		batch, buf := w.pending, w.pbuf
		w.pending, w.pbuf, w.inflight, w.flightCap = nil, nil, len(batch), cap(batch)
		w.backlog.Store(0)
		w.mu.Unlock()
		err := w.sink.writeBatch(batch)
		if err != nil {
			w.stopped(err)
		}
		putBuf(buf)
		w.mu.Lock()
		w.inflight, w.flightCap = 0, 0
		w.cond.Broadcast() // room for blocked senders
		if err != nil {
			if w.err == nil {
				w.err = err
			}
			w.closing = true
		}
	}
}

// retained returns the bytes of buffer the writer holds: the queue and the
// batch being written.
func (w *Writer) retained() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return cap(w.pending) + w.flightCap
}
