package protocol

import (
	"bufio"
	"encoding/binary"
	"io"
)

// readBufferSize is the stream reader's buffer: frames up to this size are
// returned as views into it without a copy.
const readBufferSize = 64 << 10

// StreamReader reads the TCP binding of the protocol: each frame preceded by
// its length as a 4-byte big-endian unsigned integer.
type StreamReader struct {
	br      *bufio.Reader
	max     int
	discard int    // bytes of the previous frame still to skip
	big     []byte // holds frames larger than the buffer
}

// NewStreamReader returns a reader of frames of at most maxFrame bytes.
func NewStreamReader(r io.Reader, maxFrame int) *StreamReader {
	return &StreamReader{br: bufio.NewReaderSize(r, readBufferSize), max: maxFrame}
}

// ReadFrame returns the next frame, without its length prefix. The slice is
// valid until the next call; the caller may modify it in place. A frame over
// the limit yields a TOO_LARGE *Error; the stream cannot be resynchronised
// after it and must be closed.
func (r *StreamReader) ReadFrame() ([]byte, error) {
	if r.discard > 0 {
		if _, err := r.br.Discard(r.discard); err != nil {
			return nil, err
		}
		r.discard = 0
	}
	p, err := r.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(p))
	if n > r.max || n < 0 {
		return nil, errFrameTooLarge
	}
	if _, err := r.br.Discard(4); err != nil {
		return nil, err
	}
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, unexpected(err)
		}
		r.discard = n
		return b, nil
	}
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	b := r.big[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
