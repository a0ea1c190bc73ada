package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

// SessionID names a session: 128 random bits, unguessable, chosen by the
// client (or by the server when a HELLO carries the zero id). It is the
// affinity key and the owner of a session's objects.
type SessionID [16]byte

// NewSessionID returns a fresh random session id.
func NewSessionID() SessionID {
	var s SessionID
	for s.IsZero() {
		_, _ = rand.Read(s[:]) // crypto/rand.Read never fails (Go 1.24+).
	}
	return s
}

// IsZero reports whether s is the zero id, which frames use to mean "the
// connection's session".
func (s SessionID) IsZero() bool { return s == SessionID{} }

// String returns s as 32 lowercase hex digits.
func (s SessionID) String() string { return hex.EncodeToString(s[:]) }

// ParseSessionID parses the 32-hex-digit form written by String.
func ParseSessionID(v string) (SessionID, error) {
	var s SessionID
	if len(v) != 32 {
		return s, errors.New("protocol: session id must be 32 hex digits")
	}
	if _, err := hex.Decode(s[:], []byte(v)); err != nil {
		return s, errors.New("protocol: session id must be 32 hex digits")
	}
	return s, nil
}
