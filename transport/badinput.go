package transport

import (
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Counters are what a side of the transport refused or lost, for /stats
// and tests. Each kind is logged the first time it happens, then only
// counted, so that a flood of bad messages cannot flood the log.
type Counters struct {
	// Malformed counts messages that are not a valid frame of the
	// expected type, or carry a malformed graftlb header.
	Malformed atomic.Int64
	// Oversized counts messages over the frame limit.
	Oversized atomic.Int64
	// UnknownReplies counts replies for no call in flight (late, or a
	// correlation id this proxy never gave).
	UnknownReplies atomic.Int64
	// Disconnects counts losses of the NATS connection.
	Disconnects atomic.Int64
	// FailedInFlight counts queue and fan-out calls failed because the
	// connection dropped with them in flight.
	FailedInFlight atomic.Int64
	// Expired counts calls that arrived after their deadline and did not run.
	Expired atomic.Int64
	// Executed counts calls a gateway ran (Subscriber only).
	Executed atomic.Int64

	logged [numKinds]atomic.Bool
}

type badKind uint8

const (
	kindMalformed badKind = iota
	kindOversized
	kindUnknownReply
	kindExpired
	numKinds
)

func (c *Counters) counter(k badKind) *atomic.Int64 {
	switch k {
	case kindMalformed:
		return &c.Malformed
	case kindOversized:
		return &c.Oversized
	case kindUnknownReply:
		return &c.UnknownReplies
	default:
		return &c.Expired
	}
}

// bad counts one bad input of kind k and logs the first of its kind.
func (c *Counters) bad(log *zerolog.Logger, k badKind, subject, why string) {
	c.counter(k).Add(1)
	if c.logged[k].CompareAndSwap(false, true) {
		log.Warn().Str("subject", subject).Msg(why + " (logged once; later ones are only counted)")
	}
}

// CounterValues are the Counters at one moment, for /transport.
type CounterValues struct {
	Malformed      int64 `json:"malformed"`
	Oversized      int64 `json:"oversized"`
	UnknownReplies int64 `json:"unknown_replies"`
	Disconnects    int64 `json:"disconnects"`
	FailedInFlight int64 `json:"failed_in_flight"`
	Expired        int64 `json:"expired"`
	Executed       int64 `json:"executed,omitempty"`
}

// Values reads the counters.
func (c *Counters) Values() CounterValues {
	return CounterValues{Malformed: c.Malformed.Load(), Oversized: c.Oversized.Load(), UnknownReplies: c.UnknownReplies.Load(),
		Disconnects: c.Disconnects.Load(), FailedInFlight: c.FailedInFlight.Load(), Expired: c.Expired.Load(), Executed: c.Executed.Load()}
}
