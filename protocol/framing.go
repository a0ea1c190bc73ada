package protocol

import (
	"encoding/binary"
	"math/rand/v2"
)

// framing is how a Writer frames each frame of a batch on the wire: the
// TCP binding's length prefix, or a WebSocket binary message. A Writer
// frames WebSocket messages itself, so that a batch of them is one
// socket write; the WebSocket library still does the handshake, the
// reading and the close frames.
type framing uint8

const (
	streamFraming   framing = iota // a 4-byte big-endian length
	wsServerFraming                // an RFC 6455 message, unmasked
	wsClientFraming                // an RFC 6455 message, masked (client to server)
)

// RFC 6455 section 5.2: a final frame's first byte, opcodes, and the
// longest header (2 bytes, an 8-byte length, a 4-byte mask key).
const (
	wsFin       = 0x80
	wsMask      = 0x80
	wsBinary    = 0x2
	wsPong      = 0xA
	wsMaxHeader = 14
)

// headerLen returns the size of the header before a frame of n bytes.
func (fr framing) headerLen(n int) int {
	if fr == streamFraming {
		return 4
	}
	h := 2
	switch {
	case n > 0xFFFF:
		h += 8
	case n >= 126:
		h += 2
	}
	if fr == wsClientFraming {
		h += 4
	}
	return h
}

// appendHeader appends the header of a frame of n bytes.
func (fr framing) appendHeader(dst []byte, n int) []byte {
	if fr == streamFraming {
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return fr.appendWSHeader(dst, wsBinary, n)
}

// appendWSHeader appends the header of a final WebSocket frame with
// opcode op and n bytes of payload; a client's carries a fresh mask key.
func (fr framing) appendWSHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, wsFin|op)
	var m byte
	if fr == wsClientFraming {
		m = wsMask
	}
	switch {
	case n < 126:
		dst = append(dst, m|byte(n))
	case n <= 0xFFFF:
		dst = binary.BigEndian.AppendUint16(append(dst, m|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, m|127), uint64(n))
	}
	if m != 0 {
		dst = binary.LittleEndian.AppendUint32(dst, rand.Uint32())
	}
	return dst
}

// seal masks the payload of a client's WebSocket frame b (header
// included) with the key in its header; other framings send it as it is.
func (fr framing) seal(b []byte) {
	if fr != wsClientFraming {
		return
	}
	h := 2
	switch b[1] &^ wsMask {
	case 126:
		h = 4
	case 127:
		h = 10
	}
	key32 := binary.LittleEndian.Uint32(b[h:])
	p := b[h+4:]
	key := uint64(key32) | uint64(key32)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^key)
	}
	for ; i < len(p); i++ {
		p[i] ^= byte(key32 >> (8 * (i & 3)))
	}
}
