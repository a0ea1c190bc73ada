package protocol

import "time"

// Limits bound what one connection may cost. The zero value of each field
// means its default; WithDefaults fills them in.
type Limits struct {
	// MaxFrame is the largest frame accepted, in bytes, header included
	// (default 1 MiB). A larger frame gets TOO_LARGE and the connection is
	// closed: its bytes cannot be skipped safely.
	MaxFrame int `json:"max_frame" yaml:"max_frame"`
	// MaxInflight is the most calls one connection may have in flight
	// (default 1024); more get OVERLOADED.
	MaxInflight int `json:"max_inflight" yaml:"max_inflight"`
	// HelloTimeout is how long a new connection may take to send its HELLO
	// (default 10s).
	HelloTimeout time.Duration `json:"hello_timeout" yaml:"hello_timeout"`
	// IdleTimeout closes a connection that sends nothing for this long
	// (default 5m). Clients that hold idle connections send PING.
	IdleTimeout time.Duration `json:"idle_timeout" yaml:"idle_timeout"`
	// MaxPendingWrite is how many bytes may wait to be written to a peer
	// that does not read (default 2 MiB, at least 2 × MaxFrame); past it
	// the connection is closed (or, on a connection whose senders wait for
	// room, they wait). A peer that does not read costs at most about
	// twice this in heap (see Writer), until the write timeout.
	MaxPendingWrite int `json:"max_pending_write" yaml:"max_pending_write"`
	// WriteTimeout bounds one write of a batch of frames to the socket
	// (default 10s); a peer that does not take it in time has its
	// connection closed.
	WriteTimeout time.Duration `json:"write_timeout" yaml:"write_timeout"`
}

// Defaults for Limits.
const (
	DefaultMaxFrame        = 1 << 20
	DefaultMaxInflight     = 1024
	DefaultHelloTimeout    = 10 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultMaxPendingWrite = 2 << 20
	DefaultWriteTimeout    = 10 * time.Second
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxFrame <= 0 {
		l.MaxFrame = DefaultMaxFrame
	}
	if l.MaxFrame < HeaderSize {
		l.MaxFrame = HeaderSize
	}
	if l.MaxInflight <= 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.HelloTimeout <= 0 {
		l.HelloTimeout = DefaultHelloTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxPendingWrite <= 0 {
		l.MaxPendingWrite = DefaultMaxPendingWrite
	}
	if l.MaxPendingWrite < 2*l.MaxFrame {
		l.MaxPendingWrite = 2 * l.MaxFrame
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	return l
}
