package protocol

import (
	"errors"
	"io"
	"net"
	"strconv"

	"github.com/fasthttp/websocket"
)

// ReadEnd says why reading a connection stopped. Every reader of a Conn
// (gateway, proxy, client) and pass-through's byte copy tell the cases
// apart with ClassifyRead, so that they log and answer them alike.
type ReadEnd uint8

// Read ends, from ClassifyRead.
const (
	// ReadFailed is anything else: a reset, a broken pipe.
	ReadFailed ReadEnd = iota
	// ReadEOF: the peer closed the connection between frames (TCP FIN,
	// WebSocket close 1000 or 1001).
	ReadEOF
	// ReadCut: the connection ended inside a frame, or a WebSocket peer
	// dropped it without a close handshake (1006; the WebSocket library
	// cannot tell the two apart).
	ReadCut
	// ReadClosed: this side closed the connection (net.ErrClosed).
	ReadClosed
	// ReadTimeout: a read deadline passed (an idle or HELLO timeout).
	ReadTimeout
	// ReadProtocolError: the read failed with a protocol *Error, which
	// ClassifyRead returns: a frame over the size limit, a WebSocket text
	// message, or an ERROR that a peer sent about the whole connection.
	ReadProtocolError
)

var readEndNames = [...]string{ReadFailed: "failed", ReadEOF: "eof", ReadCut: "cut", ReadClosed: "closed",
	ReadTimeout: "timeout", ReadProtocolError: "protocol error"}

func (e ReadEnd) String() string {
	if int(e) < len(readEndNames) {
		return readEndNames[e]
	}
	return "ReadEnd(" + strconv.Itoa(int(e)) + ")"
}

// ClassifyRead says why a read failed with err; for ReadProtocolError it
// also returns the protocol error.
func ClassifyRead(err error) (ReadEnd, *Error) {
	var pe *Error
	var ne net.Error
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &pe):
		return ReadProtocolError, pe
	case errors.As(err, &ne) && ne.Timeout():
		return ReadTimeout, nil
	case errors.Is(err, io.EOF):
		return ReadEOF, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ReadCut, nil
	case errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway):
		return ReadEOF, nil
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return ReadCut, nil
	case errors.Is(err, net.ErrClosed):
		return ReadClosed, nil
	}
	return ReadFailed, nil
}
