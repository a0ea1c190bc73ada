package protocol

import (
	"encoding/binary"
	"io"
	"os"
	"sync/atomic"
	"syscall"
)

// Read buffers of the stream reader, all pooled. A reader reads into a
// small buffer; while data keeps arriving (a read filled the buffer) it
// reads into a burstBufferSize one instead, so that a busy connection
// makes few system calls, and a frame larger than the buffer in use is
// read into a buffer of its size. Frames are returned as views into the
// buffer, which goes back once the bytes in it are consumed, at the start
// of a later ReadFrame. A reader of a socket waits for data holding no
// buffer at all when it has nothing buffered: an idle connection holds
// none.
const (
	readBufferSize  = 4 << 10
	burstBufferSize = 64 << 10
)

// StreamReader reads the TCP binding of the protocol: each frame preceded by
// its length as a 4-byte big-endian unsigned integer.
type StreamReader struct {
	rd   io.Reader
	rc   syscall.RawConn // rd's descriptor, if it has one: reads wait without a buffer
	max  int
	pb   *pooledBuf   // the buffer in use, if any
	buf  []byte       // pb.b, or nil
	r, w int          // buf[r:w] is read and not yet returned
	full bool         // the last read filled buf: more is probably waiting
	err  error        // a read error held back while buf[r:w] serves
	dead error        // the error ReadFrame returned: the reader is done
	held atomic.Int64 // bytes of buffer held, for tests

	// batch is flushed before the reader waits for the socket.
	batch *Batch
	// The read in progress through rc.
	want    int // bytes fill needs in buf[r:]: the size of a buffer taken again
	n       int
	rerr    error
	flushed bool
	drained bool                  // the last read took all the socket had
	readFn  func(fd uintptr) bool // s.readFD, bound once
}

// NewStreamReader returns a reader of frames of at most maxFrame bytes.
func NewStreamReader(r io.Reader, maxFrame int) *StreamReader {
	s := &StreamReader{rd: r, max: maxFrame}
	if sc, ok := r.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc, s.readFn = rc, s.readFD
		}
	}
	return s
}

// ReadFrame returns the next frame, without its length prefix. The slice is
// valid until the next call; the caller may modify it in place. A frame over
// the limit yields a TOO_LARGE *Error; the stream cannot be resynchronised
// after it and must be closed. After an error (a read deadline's included)
// the reader has given back its buffers and returns that error again.
func (s *StreamReader) ReadFrame() ([]byte, error) {
	if s.dead != nil {
		return nil, s.dead
	}
	b, err := s.next()
	if err != nil {
		s.dead = err
		s.release()
	}
	return b, err
}

func (s *StreamReader) next() ([]byte, error) {
	s.settle()
	if err := s.fill(4); err != nil {
		if err == io.EOF && s.w > s.r {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n64 := uint64(binary.BigEndian.Uint32(s.buf[s.r:]))
	if n64 > uint64(s.max) {
		return nil, errFrameTooLarge
	}
	n := int(n64)
	s.r += 4
	if n > len(s.buf) {
		s.use(getBuf(n))
	}
	if err := s.fill(n); err != nil {
		return nil, unexpected(err)
	}
	b := s.buf[s.r : s.r+n : s.r+n]
	s.r += n
	return b, nil
}

// settle trades a large buffer for a small one when what is left in it
// fits, or for a burst buffer: the previous frame, a view into it, is no
// longer in use, and a connection that goes quiet after a large frame and
// a part of the next holds no more than needed.
func (s *StreamReader) settle() {
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	switch left := s.w - s.r; {
	case s.pb == nil:
	case left <= readBufferSize && len(s.buf) > readBufferSize:
		s.use(getBuf(readBufferSize))
		s.full = false
	case left <= burstBufferSize && len(s.buf) > burstBufferSize:
		s.use(getBuf(burstBufferSize))
	}
}

// use moves the unread bytes into p and reads into it from now on.
func (s *StreamReader) use(p *pooledBuf) {
	s.w = copy(p.b, s.buf[s.r:s.w])
	s.r = 0
	putBuf(s.pb)
	s.pb, s.buf = p, p.b
	s.held.Store(int64(len(p.b)))
}

// release gives back the buffer; buf[r:w] must be empty or dropped.
func (s *StreamReader) release() {
	putBuf(s.pb)
	s.pb, s.buf, s.r, s.w, s.full = nil, nil, 0, 0, false
	s.held.Store(0)
}

// fill reads until buf[r:] holds at least need bytes (need <= len(buf)
// once a buffer is in use).
func (s *StreamReader) fill(need int) error {
	for empty := 0; s.w-s.r < need; {
		if s.err != nil {
			return s.err
		}
		switch {
		case s.pb == nil:
			s.use(getBuf(readBufferSize))
		case s.full && len(s.buf) < burstBufferSize:
			s.use(getBuf(burstBufferSize))
		case len(s.buf)-s.r < need:
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		s.want = need
		m, err := s.read()
		s.w += m
		s.full = s.buf != nil && s.w == len(s.buf)
		s.err = err
		if m > 0 {
			empty = 0
		} else if empty++; empty >= 100 && err == nil {
			s.err = io.ErrNoProgress
		}
	}
	return nil
}

// read reads once into buf[w:], flushing the batch first when it would
// wait. Through the descriptor it waits with the buffer given back if
// nothing is buffered (the buffer is then taken again for the read).
func (s *StreamReader) read() (int, error) {
	if s.rc == nil {
		s.batch.Flush()
		return s.rd.Read(s.buf[s.w:])
	}
	s.n, s.rerr, s.flushed = 0, nil, false
	if err := s.rc.Read(s.readFn); err != nil {
		return 0, err
	}
	if s.n == 0 && s.rerr == nil {
		return 0, io.EOF
	}
	return s.n, s.rerr
}

// readFD is called by the runtime when the socket may be readable; false
// makes it wait for the socket. (A read cannot be skipped after one that
// took less than it could: the runtime forgets the readiness it saw since
// at the start of each RawConn.Read, so data that arrived in between
// would wait for more data to be noticed.)
func (s *StreamReader) readFD(fd uintptr) bool {
	for {
		if s.pb == nil {
			s.use(getBuf(max(readBufferSize, s.want)))
		}
		n, err := syscall.Read(int(fd), s.buf[s.w:])
		switch err {
		case nil:
			s.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			s.wait()
			return false
		default:
			s.rerr = os.NewSyscallError("read", err)
			return true
		}
	}
}

// wait prepares the reader to wait for the socket: every frame of the
// last read is handled, so the batch is flushed (each destination written
// once), and an empty buffer goes back.
func (s *StreamReader) wait() {
	if !s.flushed {
		s.flushed = true
		s.batch.flushLate()
	}
	if s.r == s.w {
		s.release()
	}
}

// retained returns the bytes of buffer the reader holds.
func (s *StreamReader) retained() int { return int(s.held.Load()) }

// buffered reports whether a whole frame (or a length over the limit,
// which ReadFrame refuses at once) is in the buffer.
func (s *StreamReader) buffered() bool {
	if s.dead != nil || s.w-s.r < 4 {
		return false
	}
	n := uint64(binary.BigEndian.Uint32(s.buf[s.r:]))
	return n > uint64(s.max) || uint64(s.w-s.r-4) >= n
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
