package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/graftlb/graftlb/protocol"
)

// Error is the error a failed call returns: the protocol code, a message
// and, for APP_EXCEPTION, the remote exception type. Get it with errors.As;
// test the code with errors.Is against the sentinels below.
type Error = protocol.Error

// SessionID names a session (protocol.SessionID): 128 random bits.
type SessionID = protocol.SessionID

// ParseSessionID parses the 32-hex-digit form that SessionID.String writes.
func ParseSessionID(s string) (SessionID, error) { return protocol.ParseSessionID(s) }

// Sentinels for errors.Is, one per protocol code a client can see: every
// *Error with the same code matches (errors.Is(err, client.ErrSessionLost)).
// They are the protocol package's values, so protocol.ErrSessionLost
// matches the same errors.
var (
	ErrBadFrame           = protocol.ErrBadFrame
	ErrTooLarge           = protocol.ErrTooLarge
	ErrUnsupportedVersion = protocol.ErrUnsupportedVersion
	ErrUnauthenticated    = protocol.ErrUnauthenticated
	ErrNotFound           = protocol.ErrNotFound
	ErrBadArgs            = protocol.ErrBadArgs
	ErrAppException       = protocol.ErrAppException
	ErrUnavailable        = protocol.ErrUnavailable
	ErrSessionLost        = protocol.ErrSessionLost
	ErrOverloaded         = protocol.ErrOverloaded
	ErrCircuitOpen        = protocol.ErrCircuitOpen
	ErrDeadlineExceeded   = protocol.ErrDeadlineExceeded
	ErrDraining           = protocol.ErrDraining
	ErrInternal           = protocol.ErrInternal
	ErrMoved              = protocol.ErrMoved // a session moved to another gateway (a direct client; the Conn follows its own session)
)

// ErrBadTarget is wrapped by the error of a call whose module, type or
// method name is malformed; such a call is refused before anything is sent.
var ErrBadTarget = errors.New("client: bad target")

// checkTarget checks the names of a call: module is name@version (name
// without '@' or '.', version without '@', both non-empty), type and method
// are non-empty and without '.', and each fits the frame's one-byte length.
func checkTarget(t protocol.Target) error {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadTarget, t.String(), fmt.Sprintf(why, args...))
	}
	name, version, ok := strings.Cut(t.Module, "@")
	switch {
	case !ok || name == "" || version == "":
		return bad("module %q must be name@version", t.Module)
	case strings.ContainsRune(name, '.') || strings.ContainsRune(version, '@'):
		return bad("module %q: the name must not contain '.', nor the version '@'", t.Module)
	}
	for _, p := range [...]struct{ what, s string }{{"module", t.Module}, {"type", t.Type}, {"method", t.Method}} {
		switch {
		case p.s == "":
			return bad("empty %s name", p.what)
		case len(p.s) > protocol.MaxStringLen:
			return bad("%s name of %d bytes, longer than %d", p.what, len(p.s), protocol.MaxStringLen)
		case p.what != "module" && strings.ContainsRune(p.s, '.'):
			return bad("%s name %q contains '.'", p.what, p.s)
		}
	}
	return nil
}

// Code names what err says of a call, for counting failures: the protocol
// code of an *Error ("SESSION_LOST", "UNAVAILABLE", ...), "CONNECTION_LOST"
// (ErrConnectionLost: the call may have run), "CLOSED" (ErrClosed),
// "DEADLINE_EXCEEDED" for a context's deadline as for the protocol's,
// "CANCELED" for a canceled context, "" for nil and "OTHER" otherwise.
func Code(err error) string {
	var pe *protocol.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pe):
		return pe.Code.String()
	case errors.Is(err, ErrConnectionLost):
		return "CONNECTION_LOST"
	case errors.Is(err, ErrClosed):
		return "CLOSED"
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.CodeDeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return "CANCELED"
	}
	return "OTHER"
}
