package chaos

import (
	"sync"
	"time"
)

// Operation kinds of the workload.
const (
	OpStateless    = "stateless"     // orders GetOrder, IDEMPOTENT or not (Op.Idempotent)
	OpOneway       = "oneway"        // a ONEWAY Chaos.Sleep(0): nothing comes back
	OpCartNew      = "cart-new"      // a new session and its cart
	OpCartAdd      = "cart-add"      // AddItem: Op.Items, Op.Total, Op.Gateway acknowledged
	OpCartRead     = "cart-read"     // Items and Total read back: Op.Names, Op.Total
	OpCallback     = "callback"      // Ticker.Each: Op.Detail says if the sum was wrong
	OpEvents       = "events"        // Ticker.Subscribe: the events the session got
	OpForeignEvent = "foreign-event" // an event or callback another session's client should have had
)

// Op is one operation of the workload, as its client saw it. Times are
// milliseconds since the run started.
type Op struct {
	Worker     int      `json:"worker"`
	Kind       string   `json:"kind"`
	Proxy      string   `json:"proxy"`
	Session    string   `json:"session,omitempty"`
	Cart       int      `json:"cart,omitempty"` // the worker's cart number
	Gateway    string   `json:"gateway,omitempty"`
	Idempotent bool     `json:"idempotent,omitempty"`
	Code       string   `json:"code,omitempty"` // "" when it succeeded
	Detail     string   `json:"detail,omitempty"`
	Items      int      `json:"items,omitempty"`
	Total      int64    `json:"total,omitempty"`
	Names      []string `json:"names,omitempty"`
	Name       string   `json:"name,omitempty"` // the item AddItem added
	Start      int64    `json:"start_ms"`
	End        int64    `json:"end_ms"`
}

// OK reports whether the operation succeeded.
func (o Op) OK() bool { return o.Code == "" }

// Fault kinds.
const (
	FaultKillGateway = "kill-gateway" // SIGKILL, restarted under its name after a while
	FaultStopGateway = "stop-gateway" // SIGSTOP, then SIGCONT
	FaultTermGateway = "term-gateway" // SIGTERM (a drain), restarted once it exited
	FaultKillProxy   = "kill-proxy"   // SIGKILL, restarted on the same port
	FaultTermProxy   = "term-proxy"   // SIGTERM (a drain), restarted on the same port
	FaultSlowGateway = "slow-gateway" // Chaos.SetLatency, reset after a while
	FaultFailGateway = "fail-gateway" // Chaos.SetFailRate, reset after a while
	FaultJoinGateway = "join-gateway" // a new gateway joins the pool
	// Partitions (--net netns only): the gateway's namespace drops the
	// packets of the peers, then the cut heals.
	FaultPartitionGateway = "partition-gateway" // cut from one proxy (Fault.Peer)
	FaultIsolateGateway   = "isolate-gateway"   // cut from every other process: proxies and gateways (gossip)
)

// Fault is one fault of the schedule, with what happened when it ran.
type Fault struct {
	T        int64  `json:"t_ms"`
	Kind     string `json:"kind"`
	Target   string `json:"target"`
	Duration int64  `json:"duration_ms,omitempty"` // until it is undone (restart, SIGCONT, reset, heal)
	Peer     string `json:"peer,omitempty"`        // partition-gateway: the proxy cut from the target
	// Filled in by the run.
	End            int64  `json:"end_ms,omitempty"` // when it was undone; 0: never (the run ended)
	Err            string `json:"error,omitempty"`
	ThroughputMs   int64  `json:"throughput_recovered_ms,omitempty"` // after End (after T for a join)
	PoolTruthMs    int64  `json:"pool_truth_ms,omitempty"`
	Recovered      bool   `json:"recovered"`
	PoolRecovered  bool   `json:"pool_recovered"`
	PoolDiff       string `json:"pool_diff,omitempty"` // the last difference seen before the pools agreed
	SessionsLostIn int    `json:"sessions_lost,omitempty"`
	// Partitions: whether a call from the peer's namespace (the first
	// proxy's for an isolation) to the target failed once cut (CutSeen),
	// and succeeded once healed (HealSeen): the cut was real.
	CutSeen  bool `json:"cut_seen,omitempty"`
	HealSeen bool `json:"heal_seen,omitempty"`
}

// cutFrom reports whether fault f, a partition, separates its target
// from proxy p.
func (f Fault) cutFrom(p string) bool {
	return f.Kind == FaultIsolateGateway || (f.Kind == FaultPartitionGateway && f.Peer == p)
}

// window returns when a fault affects calls: from its start until it was
// undone, plus grace for what follows (a restarted process that must be
// found, a connection that must be redialled). A fault never undone lasts
// until end.
func (f Fault) window(grace, end int64) (from, to int64) {
	to = f.End
	if to == 0 {
		to = end
	}
	return f.T, to + grace
}

// History is every operation and fault of a run. It is safe for
// concurrent use.
type History struct {
	start time.Time

	mu     sync.Mutex
	ops    []Op
	faults []Fault
	stalls []Stall
}

// Stall is a time the run's own process did not run (the machine was
// overloaded): its calls' deadlines may have passed without any fault.
type Stall struct {
	From int64 `json:"from_ms"`
	To   int64 `json:"to_ms"`
}

// AddStall records a stall.
func (h *History) AddStall(s Stall) {
	h.mu.Lock()
	h.stalls = append(h.stalls, s)
	h.mu.Unlock()
}

// Stalls returns the stalls recorded so far.
func (h *History) Stalls() []Stall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Stall(nil), h.stalls...)
}

// NewHistory returns an empty history whose clock starts at start.
func NewHistory(start time.Time) *History { return &History{start: start} }

// Now returns the milliseconds since the run started.
func (h *History) Now() int64 { return time.Since(h.start).Milliseconds() }

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// AddFault records a fault as it starts and returns its index.
func (h *History) AddFault(f Fault) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, f)
	return len(h.faults) - 1
}

// UpdateFault changes fault i.
func (h *History) UpdateFault(i int, fn func(*Fault)) {
	h.mu.Lock()
	fn(&h.faults[i])
	h.mu.Unlock()
}

// Fault returns fault i as it is now.
func (h *History) Fault(i int) Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faults[i]
}

// Snapshot returns copies of the operations and faults recorded so far.
func (h *History) Snapshot() ([]Op, []Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...), append([]Fault(nil), h.faults...)
}
