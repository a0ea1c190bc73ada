package protocol

import (
	"errors"

	"github.com/fasthttp/websocket"
)

// tooLarge reports a WebSocket message refused by the connection's read
// limit (NewWSConn sets it to the frame limit) as the protocol's
// TOO_LARGE, the error an over-long TCP length prefix gets, so that
// receivers handle both bindings alike. The WebSocket library refuses such
// a message from its header, before reading its payload, and has already
// sent the peer close 1009 (message too big): the connection can only be
// closed.
func tooLarge(b []byte, err error) ([]byte, error) {
	if err != nil && errors.Is(err, websocket.ErrReadLimit) {
		return nil, errFrameTooLarge
	}
	return b, err
}
