package protocol

import (
	"encoding/binary"
	"io"
	"sync/atomic"
)

// Read buffers of the stream reader. Each reader owns a small buffer, all
// that an idle connection holds; frames that fit in it are returned as
// views into it. While data keeps arriving (a read filled the buffer) the
// reader reads into a pooled burstBufferSize buffer instead, so that a busy
// connection makes few system calls, and a frame larger than the buffer in
// use is read into a pooled buffer of its size. Pooled buffers go back
// once the bytes in them are consumed, at the start of a later ReadFrame.
const (
	readBufferSize  = 2 << 10
	burstBufferSize = 64 << 10
)

// StreamReader reads the TCP binding of the protocol: each frame preceded by
// its length as a 4-byte big-endian unsigned integer.
type StreamReader struct {
	rd   io.Reader
	max  int
	own  []byte       // readBufferSize, kept
	buf  []byte       // own, or pb.b
	pb   *pooledBuf   // the pooled buffer in use, if any
	r, w int          // buf[r:w] is read and not yet returned
	full bool         // the last read filled buf: more is probably waiting
	err  error        // a read error held back while buf[r:w] serves
	dead error        // the error ReadFrame returned: the reader is done
	held atomic.Int64 // bytes of buffer held (own and pooled), for tests
}

// NewStreamReader returns a reader of frames of at most maxFrame bytes.
func NewStreamReader(r io.Reader, maxFrame int) *StreamReader {
	own := make([]byte, readBufferSize)
	s := &StreamReader{rd: r, max: maxFrame, own: own, buf: own}
	s.held.Store(readBufferSize)
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
		putBuf(s.pb)
		s.pb, s.own, s.buf, s.r, s.w = nil, nil, nil, 0, 0
		s.held.Store(0)
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

// settle gives back the pooled buffer when what is left in it fits in the
// reader's own, or trades a large one for a burst buffer when what is left
// fits in that: the previous frame, a view into it, is no longer in use,
// and a connection that goes quiet after a large frame and a part of the
// next holds no more than needed.
func (s *StreamReader) settle() {
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	switch left := s.w - s.r; {
	case s.pb == nil:
	case left <= len(s.own):
		s.w = copy(s.own, s.buf[s.r:s.w])
		s.r = 0
		putBuf(s.pb)
		s.pb, s.buf, s.full = nil, s.own, false
		s.held.Store(int64(len(s.own)))
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
	s.held.Store(int64(len(s.own) + len(p.b)))
}

// fill reads until buf[r:] holds at least need bytes (need <= len(buf)).
func (s *StreamReader) fill(need int) error {
	for empty := 0; s.w-s.r < need; {
		if s.err != nil {
			return s.err
		}
		if s.full && s.pb == nil {
			s.use(getBuf(burstBufferSize))
		} else if len(s.buf)-s.r < need {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		m, err := s.rd.Read(s.buf[s.w:])
		s.w += m
		s.full = s.w == len(s.buf)
		s.err = err
		if m > 0 {
			empty = 0
		} else if empty++; empty >= 100 && err == nil {
			s.err = io.ErrNoProgress
		}
	}
	return nil
}

// retained returns the bytes of buffer the reader holds.
func (s *StreamReader) retained() int { return int(s.held.Load()) }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// buffered reports whether a whole frame (or a length over the limit,
// which ReadFrame refuses at once) is in the buffer.
func (s *StreamReader) buffered() bool {
	if s.dead != nil || s.w-s.r < 4 {
		return false
	}
	n := uint64(binary.BigEndian.Uint32(s.buf[s.r:]))
	return n > uint64(s.max) || uint64(s.w-s.r-4) >= n
}
