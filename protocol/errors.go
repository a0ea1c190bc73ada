package protocol

import (
	"encoding/binary"
	"fmt"
)

// Code is a protocol error code, carried by ERROR and GOAWAY frames. The
// numbers are part of the wire contract (SPEC.md section 6).
type Code uint16

// Error codes. NotOwner travels only between a proxy and a gateway; a proxy
// never shows it to a client. Moved reaches only direct clients of a gateway
// (through a proxy the session is rebound instead): the exception type field
// then holds the new gateway's address as a target URL.
const (
	CodeBadFrame           Code = 1
	CodeTooLarge           Code = 2
	CodeUnsupportedVersion Code = 3
	CodeUnauthenticated    Code = 4
	CodeNotFound           Code = 5
	CodeBadArgs            Code = 6
	CodeAppException       Code = 7
	CodeUnavailable        Code = 8
	CodeSessionLost        Code = 9
	CodeOverloaded         Code = 10
	CodeCircuitOpen        Code = 11
	CodeDeadlineExceeded   Code = 12
	CodeDraining           Code = 13
	CodeNotOwner           Code = 14
	CodeInternal           Code = 15
	CodeMoved              Code = 16
)

var codeNames = [...]string{
	CodeBadFrame:           "BAD_FRAME",
	CodeTooLarge:           "TOO_LARGE",
	CodeUnsupportedVersion: "UNSUPPORTED_VERSION",
	CodeUnauthenticated:    "UNAUTHENTICATED",
	CodeNotFound:           "NOT_FOUND",
	CodeBadArgs:            "BAD_ARGS",
	CodeAppException:       "APP_EXCEPTION",
	CodeUnavailable:        "UNAVAILABLE",
	CodeSessionLost:        "SESSION_LOST",
	CodeOverloaded:         "OVERLOADED",
	CodeCircuitOpen:        "CIRCUIT_OPEN",
	CodeDeadlineExceeded:   "DEADLINE_EXCEEDED",
	CodeDraining:           "DRAINING",
	CodeNotOwner:           "NOT_OWNER",
	CodeInternal:           "INTERNAL",
	CodeMoved:              "MOVED",
}

func (c Code) String() string {
	if c >= CodeBadFrame && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint16(c))
}

// ParseCode returns the code named s (as String writes it).
func ParseCode(s string) (Code, bool) {
	for c, n := range codeNames {
		if n != "" && n == s {
			return Code(c), true
		}
	}
	return 0, false
}

// Error is a protocol error: what an ERROR frame carries, and what the
// client returns for a failed call. Compare with errors.Is against a value
// that has only Code set, such as ErrSessionLost.
type Error struct {
	Code    Code
	Message string
	// Type is the remote exception type for APP_EXCEPTION, the new
	// gateway's target URL for MOVED, empty otherwise.
	Type string
}

func (e *Error) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Type)
	}
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error with code c and a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is, one per code.
var (
	ErrBadFrame           = &Error{Code: CodeBadFrame}
	ErrTooLarge           = &Error{Code: CodeTooLarge}
	ErrUnsupportedVersion = &Error{Code: CodeUnsupportedVersion}
	ErrUnauthenticated    = &Error{Code: CodeUnauthenticated}
	ErrNotFound           = &Error{Code: CodeNotFound}
	ErrBadArgs            = &Error{Code: CodeBadArgs}
	ErrAppException       = &Error{Code: CodeAppException}
	ErrUnavailable        = &Error{Code: CodeUnavailable}
	ErrSessionLost        = &Error{Code: CodeSessionLost}
	ErrOverloaded         = &Error{Code: CodeOverloaded}
	ErrCircuitOpen        = &Error{Code: CodeCircuitOpen}
	ErrDeadlineExceeded   = &Error{Code: CodeDeadlineExceeded}
	ErrDraining           = &Error{Code: CodeDraining}
	ErrNotOwner           = &Error{Code: CodeNotOwner}
	ErrInternal           = &Error{Code: CodeInternal}
	ErrMoved              = &Error{Code: CodeMoved}
)

// Codec errors, preallocated so that decoding allocates nothing.
var (
	errTruncated     = &Error{Code: CodeBadFrame, Message: "frame shorter than its header"}
	errLength        = &Error{Code: CodeBadFrame, Message: "frame length does not match its header"}
	errVersion       = &Error{Code: CodeUnsupportedVersion, Message: "unsupported protocol version"}
	errUnknownType   = &Error{Code: CodeBadFrame, Message: "unknown frame type"}
	errStringTooLong = &Error{Code: CodeBadFrame, Message: "target string longer than 255 bytes"}
	errErrorBody     = &Error{Code: CodeBadFrame, Message: "malformed error body"}
	errFrameTooLarge = &Error{Code: CodeTooLarge, Message: "frame exceeds the size limit"}
)

// maxErrorText bounds the message and type strings of an error body.
const maxErrorText = 0xffff

// AppendErrorBody appends the body of an ERROR or GOAWAY frame:
// code (u16), message length (u16), message, type length (u16), type.
// Longer strings are truncated to 65535 bytes.
func AppendErrorBody(dst []byte, c Code, msg, typ string) []byte {
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	if len(typ) > maxErrorText {
		typ = typ[:maxErrorText]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(c))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	dst = append(dst, msg...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(typ)))
	return append(dst, typ...)
}

// DecodeErrorBody parses the body of an ERROR or GOAWAY frame. msg and typ
// are views into b.
func DecodeErrorBody(b []byte) (c Code, msg, typ []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, errErrorBody
	}
	c = Code(binary.BigEndian.Uint16(b))
	n := int(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	if len(b) < n+2 {
		return 0, nil, nil, errErrorBody
	}
	msg, b = b[:n], b[n:]
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != n {
		return 0, nil, nil, errErrorBody
	}
	return c, msg, b, nil
}

// ErrorFromBody decodes an ERROR or GOAWAY body into an *Error (allocating
// its strings); a malformed body becomes a BAD_FRAME error.
func ErrorFromBody(b []byte) *Error {
	c, msg, typ, err := DecodeErrorBody(b)
	if err != nil {
		return &Error{Code: CodeBadFrame, Message: "peer sent a malformed error body"}
	}
	return &Error{Code: c, Message: string(msg), Type: string(typ)}
}

// CodeSlots is the number of outcome slots that counters indexed by
// CodeSlot need: slot 0 for success (a RESULT), one per error code, and a
// last one for codes this version does not know.
const CodeSlots = len(codeNames) + 1

// CodeSlot is the counter slot of an outcome: 0 for success, the code
// itself for a known code, CodeSlots-1 for any other.
func CodeSlot(c Code) int {
	if int(c) < len(codeNames) {
		return int(c)
	}
	return CodeSlots - 1
}

// SlotLabel is the metric label of counter slot i: "OK", a code's name,
// or "OTHER".
func SlotLabel(i int) string {
	switch i {
	case 0:
		return "OK"
	case CodeSlots - 1:
		return "OTHER"
	}
	return Code(i).String()
}
