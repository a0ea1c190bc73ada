package listener

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// SourceOf is the source a client connection counts against for the
// connection cap per source: the peer address of the connection, which is
// the one place a PROXY-protocol listener (when there is one) puts the
// address its header names. IPv4 addresses count one by one; IPv6
// addresses by their /64, the block one subscriber gets. A connection
// with no IP address (a pipe) has no source: ok is false and it is not
// counted. The address must not change over the connection's life:
// admission and release both read it.
func SourceOf(addr net.Addr) (src netip.Addr, ok bool) {
	a, isTCP := addr.(*net.TCPAddr)
	if !isTCP {
		return netip.Addr{}, false
	}
	ip := a.AddrPort().Addr().Unmap()
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// Defaults of the connection caps, the same for every server that admits
// clients.
const (
	// DefaultMaxConns caps the client connections of a server.
	DefaultMaxConns = 10000
	// DefaultMaxConnsPerSource is a tenth of DefaultMaxConns: ten hosts
	// are needed to fill a server, and a host that opens a thousand
	// connections (a test, a bench, clients behind one NAT) still fits.
	DefaultMaxConnsPerSource = 1000
)

// RefusalLogInterval is the least time between two log lines about
// refused connections of one kind: a flood of refusals costs one line per
// interval, which counts the refusals it did not log.
const RefusalLogInterval = 10 * time.Second

// Admission admits client connections under a cap on all of them and a
// cap per source address (SourceOf). Admission is per connection, not per
// frame, so the per-source map under a lock is cheap enough. It is safe
// for concurrent use.
type Admission struct {
	// The caps, which SetLimits changes; perSource <= 0: no cap per source
	// (connections are counted by source all the same, so that a cap set
	// later counts them).
	max, perSource atomic.Int64
	// Immutable after NewAdmission.
	log *zerolog.Logger
	now func() int64 // UnixNano, for the refusal logs

	conns atomic.Int64
	// full and source rate-limit the logs of the two kinds of refusal.
	full, source refusalLog

	mu       sync.Mutex
	bySource map[netip.Addr]int
}

// NewAdmission returns an Admission for at most maxConns connections, at
// most perSource of them from one source (<= 0: no cap per source).
// Refusals are logged to log at warn level, at most once per
// RefusalLogInterval of now's clock (nil: the real clock) and kind.
func NewAdmission(maxConns, perSource int, log *zerolog.Logger, now func() int64) *Admission {
	if now == nil {
		now = func() int64 { return time.Now().UnixNano() }
	}
	a := &Admission{log: log, now: now, bySource: make(map[netip.Addr]int)}
	a.SetLimits(maxConns, perSource)
	return a
}

// SetLimits changes the caps, for a reload: connections admitted stay,
// and a cap lowered below the count refuses new ones until enough leave.
func (a *Admission) SetLimits(maxConns, perSource int) {
	a.max.Store(int64(maxConns))
	a.perSource.Store(int64(perSource))
}

// Admit counts a new connection from addr, or refuses it and returns why,
// in words fit for the client (an ERROR OVERLOADED message).
func (a *Admission) Admit(addr net.Addr) (why string, ok bool) {
	if !a.acquireSource(addr) {
		src, _ := SourceOf(addr)
		why = fmt.Sprintf("too many connections from %s (at most %d per source)", src, a.perSource.Load())
		a.refused(addr, &a.source, why, "connection limit per source reached; refusing")
		return why, false
	}
	if a.conns.Add(1) > a.max.Load() {
		a.conns.Add(-1)
		a.releaseSource(addr)
		why = "connection limit reached"
		a.refused(addr, &a.full, why, "connection limit reached; refusing")
		return why, false
	}
	return "", true
}

// Release forgets a connection that Admit admitted; it must be called
// exactly once for each.
func (a *Admission) Release(addr net.Addr) {
	a.conns.Add(-1)
	a.releaseSource(addr)
}

// Conns returns the connections admitted and not yet released.
func (a *Admission) Conns() int64 { return a.conns.Load() }

func (a *Admission) refused(addr net.Addr, rl *refusalLog, why, msg string) {
	if ok, suppressed := rl.allow(a.now()); ok {
		a.log.Warn().Str("client", addr.String()).Str("reason", why).Int64("suppressed", suppressed).Msg(msg)
	}
}

func (a *Admission) acquireSource(addr net.Addr) bool {
	src, ok := SourceOf(addr)
	if !ok {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cap := a.perSource.Load(); cap > 0 && int64(a.bySource[src]) >= cap {
		return false
	}
	a.bySource[src]++
	return true
}

func (a *Admission) releaseSource(addr net.Addr) {
	src, ok := SourceOf(addr)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

// refusalLog rate-limits the log lines of one kind of refusal.
type refusalLog struct {
	next       atomic.Int64 // clock time (UnixNano) from which a line may be logged
	suppressed atomic.Int64 // refusals not logged since the last line
}

// allow reports whether a refusal at now gets a log line, and how many
// refusals since the last line did not.
func (r *refusalLog) allow(now int64) (ok bool, suppressed int64) {
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(RefusalLogInterval)) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}

// RefusalLog rate-limits the log lines of one kind of refusal, as the
// Admission does its own (at most one per RefusalLogInterval). The zero
// value is ready to use.
type RefusalLog struct{ r refusalLog }

// Allow reports whether a refusal at now (UnixNano) gets a log line, and
// how many refusals since the last line did not.
func (l *RefusalLog) Allow(now int64) (ok bool, suppressed int64) { return l.r.allow(now) }
