package protocol

import (
	"encoding/binary"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of the fixed part of every frame header.
const HeaderSize = 44

// MaxStringLen is the longest target string (module, type, method, trace):
// each is prefixed by a one-byte length.
const MaxStringLen = 255

// Offsets of the fixed header fields. Code outside this package patches a
// frame in place (the proxy rewrites call ids, flags, session ids and
// deadlines without decoding and re-encoding) through the Set* functions.
const (
	offVersion   = 0
	offType      = 1
	offFlags     = 2
	offCallID    = 4
	offSession   = 8
	offObject    = 24
	offDeadline  = 32
	offBodyLen   = 36
	offModuleLen = 40
	offTypeLen   = 41
	offMethodLen = 42
	offTraceLen  = 43
)

// Type is a frame type.
type Type uint8

// Frame types; SPEC.md section 4 says who sends each and what it carries.
const (
	TypeHello          Type = 1
	TypeWelcome        Type = 2
	TypeCall           Type = 3
	TypeResult         Type = 4
	TypeError          Type = 5
	TypeCallback       Type = 6
	TypeCallbackResult Type = 7
	TypeEvent          Type = 8
	TypePing           Type = 9
	TypePong           Type = 10
	TypeGoaway         Type = 11
	// TypeMoved goes from a gateway to the proxies connected to it only:
	// the session named by the frame now lives on the gateway named by its
	// module field (SPEC.md section 7, Handoff).
	TypeMoved Type = 12
)

var typeNames = [...]string{
	TypeHello:          "HELLO",
	TypeWelcome:        "WELCOME",
	TypeCall:           "CALL",
	TypeResult:         "RESULT",
	TypeError:          "ERROR",
	TypeCallback:       "CALLBACK",
	TypeCallbackResult: "CALLBACK_RESULT",
	TypeEvent:          "EVENT",
	TypePing:           "PING",
	TypePong:           "PONG",
	TypeGoaway:         "GOAWAY",
	TypeMoved:          "MOVED",
}

// Known reports whether t is a frame type of this protocol version.
func (t Type) Known() bool { return t >= TypeHello && t <= TypeMoved }

func (t Type) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return "UNKNOWN"
}

// Flags is the flag word of a frame header. Bits this version does not
// define are reserved: senders set them to zero, receivers ignore them.
type Flags uint16

const (
	// FlagStateless marks a CALL that any gateway may serve.
	FlagStateless Flags = 1 << 0
	// FlagOneway marks a CALL that expects no RESULT or ERROR.
	FlagOneway Flags = 1 << 1
	// FlagIdempotent marks a CALL that may safely run more than once, so a
	// proxy may retry it on another gateway after a failure.
	FlagIdempotent Flags = 1 << 2
	// FlagNewSession on a CALL says its session was just created by the
	// client: a gateway that does not hold it creates it instead of
	// answering SESSION_LOST (or NOT_OWNER to a proxy).
	FlagNewSession Flags = 1 << 3
	// FlagResume on a HELLO says the session id names an existing session
	// the client wants back (after a reconnect).
	FlagResume Flags = 1 << 4
	// FlagProxy on a HELLO says the peer is a graftlb proxy that carries
	// many clients' sessions on one connection.
	FlagProxy Flags = 1 << 5
	// FlagReconnect on a GOAWAY says the server (a draining proxy) will
	// close the connection: the client should move to a new connection to
	// the same target and resume its sessions there (SPEC.md section 4).
	FlagReconnect Flags = 1 << 6
)

// Has reports whether all bits of g are set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Frame is one protocol frame. The byte-slice fields are views: after Decode
// they point into the decoded buffer and are valid only as long as it is;
// copy what you keep.
type Frame struct {
	Type     Type
	Flags    Flags
	CallID   uint32
	Session  SessionID
	Object   uint64
	Deadline uint32 // milliseconds left when sent; 0 = none
	Module   []byte // module@version
	TypeName []byte
	Method   []byte
	Trace    []byte // W3C traceparent, or empty
	Body     []byte
}

// Reset clears f for reuse.
func (f *Frame) Reset() { *f = Frame{} }

// Size returns the encoded size of f in bytes.
func (f *Frame) Size() int {
	return HeaderSize + len(f.Module) + len(f.TypeName) + len(f.Method) + len(f.Trace) + len(f.Body)
}

// AppendFrame appends the encoding of f to dst and returns the extended
// buffer. It fails only when a target string is longer than MaxStringLen.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	if len(f.Module) > MaxStringLen || len(f.TypeName) > MaxStringLen ||
		len(f.Method) > MaxStringLen || len(f.Trace) > MaxStringLen {
		return dst, errStringTooLong
	}
	var h [HeaderSize]byte
	h[offVersion] = Version
	h[offType] = byte(f.Type)
	binary.BigEndian.PutUint16(h[offFlags:], uint16(f.Flags))
	binary.BigEndian.PutUint32(h[offCallID:], f.CallID)
	copy(h[offSession:offObject], f.Session[:])
	binary.BigEndian.PutUint64(h[offObject:], f.Object)
	binary.BigEndian.PutUint32(h[offDeadline:], f.Deadline)
	binary.BigEndian.PutUint32(h[offBodyLen:], uint32(len(f.Body)))
	h[offModuleLen] = byte(len(f.Module))
	h[offTypeLen] = byte(len(f.TypeName))
	h[offMethodLen] = byte(len(f.Method))
	h[offTraceLen] = byte(len(f.Trace))
	dst = append(dst, h[:]...)
	dst = append(dst, f.Module...)
	dst = append(dst, f.TypeName...)
	dst = append(dst, f.Method...)
	dst = append(dst, f.Trace...)
	dst = append(dst, f.Body...)
	return dst, nil
}

// Decode parses the frame in b into f. b must hold exactly one frame (the
// TCP length prefix already removed). f's byte fields become views into b.
//
// When the fixed header is complete, f's fixed fields are filled even if
// Decode then fails, so that the caller can address its ERROR reply to the
// frame's call id. The error is a *Error with code BAD_FRAME or
// UNSUPPORTED_VERSION.
func Decode(b []byte, f *Frame) error {
	if len(b) < HeaderSize {
		return errTruncated
	}
	f.Type = Type(b[offType])
	f.Flags = Flags(binary.BigEndian.Uint16(b[offFlags:]))
	f.CallID = binary.BigEndian.Uint32(b[offCallID:])
	copy(f.Session[:], b[offSession:offObject])
	f.Object = binary.BigEndian.Uint64(b[offObject:])
	f.Deadline = binary.BigEndian.Uint32(b[offDeadline:])
	if b[offVersion] != Version {
		return errVersion
	}
	bodyLen := uint64(binary.BigEndian.Uint32(b[offBodyLen:]))
	ml, tl, nl, rl := int(b[offModuleLen]), int(b[offTypeLen]), int(b[offMethodLen]), int(b[offTraceLen])
	strs := ml + tl + nl + rl
	if uint64(HeaderSize+strs)+bodyLen != uint64(len(b)) {
		return errLength
	}
	p := HeaderSize
	f.Module = b[p : p+ml : p+ml]
	p += ml
	f.TypeName = b[p : p+tl : p+tl]
	p += tl
	f.Method = b[p : p+nl : p+nl]
	p += nl
	f.Trace = b[p : p+rl : p+rl]
	p += rl
	f.Body = b[p:len(b):len(b)]
	if !f.Type.Known() {
		return errUnknownType
	}
	return nil
}

// PeekHeader reads the type, flags and call id of an encoded frame without
// decoding the rest. ok is false when b is shorter than the fixed header.
func PeekHeader(b []byte) (t Type, fl Flags, callID uint32, ok bool) {
	if len(b) < HeaderSize {
		return 0, 0, 0, false
	}
	return Type(b[offType]), Flags(binary.BigEndian.Uint16(b[offFlags:])), binary.BigEndian.Uint32(b[offCallID:]), true
}

// SetCallID rewrites the call id of an encoded frame in place. b must hold
// at least a fixed header (callers pass frames that decoded cleanly).
func SetCallID(b []byte, id uint32) { binary.BigEndian.PutUint32(b[offCallID:], id) }

// SetSession rewrites the session id of an encoded frame in place.
func SetSession(b []byte, s SessionID) { copy(b[offSession:offObject], s[:]) }

// SetFlags rewrites the flags of an encoded frame in place.
func SetFlags(b []byte, fl Flags) { binary.BigEndian.PutUint16(b[offFlags:], uint16(fl)) }

// SetDeadline rewrites the deadline (milliseconds left) of an encoded frame
// in place.
func SetDeadline(b []byte, ms uint32) { binary.BigEndian.PutUint32(b[offDeadline:], ms) }
