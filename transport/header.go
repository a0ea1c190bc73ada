package transport

import (
	"strconv"
	"time"
)

// Headers graftlb sets on NATS messages (protocol/TRANSPORT.md, Headers).
// None starts with "Nats-": those belong to NATS. Times are Unix
// milliseconds in decimal.
const (
	// HeaderDeadline is when the call's deadline passes. A gateway that
	// receives the call later answers DEADLINE_EXCEEDED without running it;
	// one that runs it gives it the time left.
	HeaderDeadline = "Graftlb-Deadline"
	// HeaderNotBefore is the earliest time a durable call may run.
	HeaderNotBefore = "Graftlb-Not-Before"
	// HeaderGateway names the gateway that answered (on replies).
	HeaderGateway = "Graftlb-Gateway"
	// HeaderVersion is the transport version, "1"; a receiver refuses a
	// message whose version it does not know (UNSUPPORTED_VERSION).
	HeaderVersion = "Graftlb-Version"
)

// Version is the transport version this package speaks.
const Version = "1"

func formatMillis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// parseMillis parses a header time; ok is false for a malformed value,
// and an absent one (empty) is the zero time.
func parseMillis(s string) (t time.Time, ok bool) {
	if s == "" {
		return time.Time{}, true
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
