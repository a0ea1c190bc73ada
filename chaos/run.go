package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/client"
)

// Config configures a run.
type Config struct {
	// Binary is the graftlb binary the run starts (required).
	Binary string
	// Proxies and Gateways are how many of each start (defaults 2 and 5).
	Proxies, Gateways int
	// Faults is how many faults to run; Duration bounds the run instead
	// when Faults is 0 (default 20 faults).
	Faults   int
	Duration time.Duration
	// Seed draws the schedule (default: from the clock; the report says it).
	Seed int64
	// KeepGoing runs on after a violation instead of stopping.
	KeepGoing bool
	// MaxShare is the share of the gateways under a fault at once (0.4).
	MaxShare float64
	// Kinds limits the fault kinds (default AllFaults on loopback,
	// NetnsFaults in network namespaces).
	Kinds []string
	// Net is where the processes run: NetLoopback (the default: every
	// process on 127.0.0.1, no partitions) or NetNetns (each in a network
	// namespace of its own, so that partitions are real; needs root).
	Net string
	// SessionTTL is the gateways' session TTL (default 2m): sessions idle
	// longer may be lost without a violation.
	SessionTTL time.Duration
	// DrainGrace is the gateways' drain grace (default 10s).
	DrainGrace time.Duration
	// RecoveryBound is how long recovery may take after a fault (30s: a
	// gateway killed and restarted under its name is accepted by gossip
	// once its old run is declared dead, 8 s on a quiet machine and up to
	// 23 s measured on an overloaded one).
	RecoveryBound time.Duration
	// Log receives a line per fault and per violation (default: none).
	Log io.Writer
	// LogDir, if set, receives every process's stderr, one file per
	// process (gw2.3.log: the third run of gw2); gateways log at debug
	// level (each session a drain hands over, and to whom), proxies at info.
	LogDir string
}

func (c Config) withDefaults() Config {
	if c.Proxies <= 0 {
		c.Proxies = 2
	}
	if c.Gateways <= 0 {
		c.Gateways = 5
	}
	if c.Faults == 0 && c.Duration == 0 {
		c.Faults = 20
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano() % 1_000_000
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 2 * time.Minute
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = 10 * time.Second
	}
	if c.RecoveryBound <= 0 {
		c.RecoveryBound = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Net == "" {
		c.Net = NetLoopback
	}
	if len(c.Kinds) == 0 {
		c.Kinds = AllFaults
		if c.Net == NetNetns {
			c.Kinds = NetnsFaults
		}
	}
	return c
}

// Validate refuses what a run cannot do: partitions on loopback, an
// unknown kind or network, network namespaces without root.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Binary == "" {
		return fmt.Errorf("chaos: no graftlb binary")
	}
	if c.Net != NetLoopback && c.Net != NetNetns {
		return fmt.Errorf("chaos: unknown network %q (loopback or netns)", c.Net)
	}
	for _, k := range c.Kinds {
		if !slices.Contains(NetnsFaults, k) {
			return fmt.Errorf("chaos: unknown fault kind %q (kinds: %s)", k, strings.Join(NetnsFaults, ","))
		}
		if c.Net != NetNetns && slices.Contains(PartitionFaults, k) {
			return fmt.Errorf("chaos: %s needs --net netns (processes on one loopback cannot be partitioned)", k)
		}
	}
	if c.Net == NetNetns {
		return NetnsUsable()
	}
	return nil
}

// Result is a run's report: the contract of `graftlb chaos --json`.
type Result struct {
	Seed        int64          `json:"seed"`
	Faults      []Fault        `json:"faults"`
	Violations  []Violation    `json:"violations"`
	CallsOK     int            `json:"calls_ok"`
	CallsFailed int            `json:"calls_failed"`
	Errors      map[string]int `json:"errors"`
	Sessions    SessionCounts  `json:"sessions"`
	DurationMs  int64          `json:"duration_ms"`
	// Stalls are times the run's own process did not run for over a
	// second (an overloaded machine); deadlines missed then are excused.
	Stalls []Stall `json:"stalls"`
	// Ops is every operation, for a replay's reader (not in the JSON
	// unless asked: it is large).
	Ops []Op `json:"-"`
}

// SessionCounts count the carts of a run.
type SessionCounts struct {
	Started           int `json:"started"`
	Verified          int `json:"verified"`
	Lost              int `json:"lost"`
	LostWithDeadOwner int `json:"lost_with_dead_owner"`
	Misrouted         int `json:"misrouted"`
}

// OK reports whether the run found no violation.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// Run starts the cluster, runs the workload and the schedule, checks the
// history and stops everything. It returns an error only when the run
// could not be made (a process did not start); violations are in the
// result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sched := Schedule(cfg.Seed, ScheduleParams{Gateways: cfg.Gateways, Proxies: cfg.Proxies, Faults: cfg.Faults,
		Duration: cfg.Duration, MaxShare: cfg.MaxShare, Kinds: cfg.Kinds})
	c, err := newCluster(cfg.Binary, cfg.LogDir, cfg.Net,
		[]string{"--session-ttl", cfg.SessionTTL.String(), "--drain-grace", cfg.DrainGrace.String()},
		nil)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var gws, proxies []string
	for i := 1; i <= cfg.Gateways; i++ {
		gws = append(gws, "gw"+strconv.Itoa(i))
		if err := c.startGateway(ctx, gws[i-1]); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= cfg.Proxies; i++ {
		proxies = append(proxies, "p"+strconv.Itoa(i))
		if err := c.startProxy(ctx, proxies[i-1]); err != nil {
			return nil, err
		}
	}
	h := NewHistory(time.Now())
	m := newMonitor(c, h)
	defer m.halt()
	stallStop := watchStalls(h)
	defer stallStop()
	if err := m.awaitTruth(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	for _, p := range c.liveProxies() {
		p.fds = openFDs(p.proc.PID())
	}
	w, err := startWorkload(ctx, h, c, proxies, cfg.Seed)
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, c: c, h: h, m: m, params: CheckParams{Gateways: gws, SessionTTL: cfg.SessionTTL.Milliseconds(),
		Grace: 5000, RecoveryBound: cfg.RecoveryBound.Milliseconds()}}
	r.play(ctx, sched, h.Now())
	// Let the last faults be undone and settle, then stop the load.
	r.undos.Wait()
	r.settle(ctx, cfg.RecoveryBound)
	w.halt()
	r.procs = append(r.procs, r.leaks()...)
	return r.result(), nil
}

type runner struct {
	cfg    Config
	c      *cluster
	h      *History
	m      *monitor
	params CheckParams
	undos  sync.WaitGroup

	mu       sync.Mutex
	targets  map[string]*sync.Mutex // held by the fault running on a target
	procs    []Violation            // invariant 5, found by the runner
	reported map[string]bool
	stopped  bool // a violation stopped the run
}

// play runs the schedule, its times counted from t0: each fault at its
// time, its undo after its duration, a check after each.
func (r *runner) play(ctx context.Context, sched []Fault, t0 int64) {
	for _, f := range sched {
		wait := time.Duration(t0+f.T-r.h.Now()) * time.Millisecond
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if r.halted() {
			return
		}
		r.undos.Add(1)
		go func() {
			defer r.undos.Done()
			// A target's faults run one at a time: the schedule's model of
			// busy targets assumes restarts and drains of a healthy
			// machine, and an overloaded one may still be restarting it.
			unlock := r.lockTarget(f.Target)
			defer unlock()
			f.T = r.h.Now()
			i := r.h.AddFault(f)
			fmt.Fprintf(r.cfg.Log, "%7d ms  %-17s %s\n", f.T, f.Kind, f.Target+prefixed("|", f.Peer))
			r.m.changed(i)
			err := r.apply(ctx, i, f)
			if err != nil {
				r.h.UpdateFault(i, func(f *Fault) { f.Err = err.Error() })
			}
			if r.h.Fault(i).End == 0 { // a partition's ends at its heal
				r.undone(i)
			}
		}()
		r.check()
	}
}

// undone records that fault i was undone now.
func (r *runner) undone(i int) {
	r.h.UpdateFault(i, func(f *Fault) { f.End = r.h.Now() })
	r.m.changed(i)
}

// lockTarget waits until no other fault runs on target, and returns the
// function that lets the next one run.
func (r *runner) lockTarget(target string) (unlock func()) {
	r.mu.Lock()
	if r.targets == nil {
		r.targets = map[string]*sync.Mutex{}
	}
	l := r.targets[target]
	if l == nil {
		l = new(sync.Mutex)
		r.targets[target] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (r *runner) halted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// apply runs fault f, the history's fault i, and undoes it after its
// duration.
func (r *runner) apply(ctx context.Context, i int, f Fault) error {
	d := time.Duration(f.Duration) * time.Millisecond
	sleep := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	switch f.Kind {
	case FaultJoinGateway:
		return r.c.startGateway(ctx, f.Target)
	case FaultKillGateway:
		if err := r.c.signalGateway(f.Target, syscall.SIGKILL); err != nil {
			return err
		}
		<-r.c.gatewayProc(f.Target).Done()
		sleep(d)
		return r.c.startGateway(ctx, f.Target)
	case FaultStopGateway:
		if err := r.c.signalGateway(f.Target, syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(d)
		return r.c.signalGateway(f.Target, syscall.SIGCONT)
	case FaultTermGateway:
		p := r.c.gatewayProc(f.Target)
		if err := r.c.signalGateway(f.Target, syscall.SIGTERM); err != nil {
			return err
		}
		limit := r.cfg.DrainGrace + 10*time.Second
		if code, ok := p.Wait(limit); !ok || code != 0 {
			r.violate(Violation{InvProcess, fmt.Sprintf("gateway %s did not drain and exit 0 within %v of SIGTERM at %d ms (exited %v, code %d)",
				f.Target, limit, f.T, ok, code), r.h.Now()})
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		sleep(d)
		return r.c.startGateway(ctx, f.Target)
	case FaultKillProxy, FaultTermProxy:
		sig := syscall.SIGKILL
		if f.Kind == FaultTermProxy {
			sig = syscall.SIGTERM
		}
		p, err := r.c.signalProxy(f.Target, sig)
		if err != nil {
			return err
		}
		limit := 30 * time.Second
		if _, ok := p.Wait(limit); !ok {
			r.violate(Violation{InvProcess, fmt.Sprintf("proxy %s did not exit within %v of %s at %d ms", f.Target, limit, sig, f.T), r.h.Now()})
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		sleep(d)
		return r.c.startProxy(ctx, f.Target)
	case FaultPartitionGateway, FaultIsolateGateway:
		return r.partition(ctx, i, f, sleep)
	case FaultSlowGateway, FaultFailGateway:
		method, on, off := "SetLatency", any(50+int(f.Duration%150)), any(0)
		if f.Kind == FaultFailGateway {
			method, on, off = "SetFailRate", any(0.3), any(0.0)
		}
		if err := r.setFault(ctx, f.Target, method, on); err != nil {
			return err
		}
		sleep(d)
		// Undone for sure: a fault left on would fail calls for the rest
		// of the run. An overloaded gateway may miss one handshake.
		var err error
		for try := 0; try < 3 && ctx.Err() == nil; try++ {
			if err = r.setFault(ctx, f.Target, method, off); err == nil {
				break
			}
		}
		return err
	}
	return fmt.Errorf("chaos: unknown fault kind %q", f.Kind)
}

// partition cuts f's target off (from its peer, or from everyone), checks
// from a cut-off proxy's namespace that calls to it fail, heals the cut
// after f's duration and checks that they succeed again.
func (r *runner) partition(ctx context.Context, i int, f Fault, sleep func(time.Duration)) error {
	var peers []string
	from := f.Peer
	if f.Kind == FaultPartitionGateway {
		peers = []string{f.Peer}
	} else {
		from = "p1"
	}
	p := r.c.gatewayProc(f.Target)
	if p == nil {
		return fmt.Errorf("chaos: no gateway %s", f.Target)
	}
	start := time.Now()
	if err := r.c.partition(f.Target, peers); err != nil {
		return err
	}
	if !r.c.net.reachable(ctx, r.cfg.Binary, from, p.Addr.TCP, time.Second) {
		r.h.UpdateFault(i, func(f *Fault) { f.CutSeen = true })
	}
	sleep(time.Duration(f.Duration)*time.Millisecond - time.Since(start))
	if err := r.c.heal(f.Target); err != nil {
		return err
	}
	r.undone(i)
	for try := 0; try < 5; try++ {
		if r.c.net.reachable(ctx, r.cfg.Binary, from, p.Addr.TCP, 2*time.Second) {
			r.h.UpdateFault(i, func(f *Fault) { f.HealSeen = true })
			break
		}
	}
	return nil
}

// prefixed returns sep+s, or "" when s is.
func prefixed(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// setFault calls a Chaos setter on gateway name directly (not through a
// proxy, which would pick any gateway).
func (r *runner) setFault(ctx context.Context, name, method string, v any) error {
	p := r.c.gatewayProc(name)
	if p == nil {
		return fmt.Errorf("chaos: no gateway %s", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second) // generous: the machine may be overloaded
	defer cancel()
	conn, err := client.Dial(ctx, "tcp://"+p.Addr.TCP, client.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Session().CallStateless(ctx, "chaos@1.Chaos."+method, v)
	return err
}

func (r *runner) violate(v Violation) {
	r.mu.Lock()
	r.procs = append(r.procs, v)
	r.mu.Unlock()
}

// check runs the checker on the history so far and logs new violations;
// a violation stops the run unless KeepGoing.
func (r *runner) check() []Violation {
	ops, faults := r.h.Snapshot()
	p := r.params
	p.End = r.h.Now()
	p.Stalls = r.h.Stalls()
	r.fillRecovery(ops, faults, p.End)
	_, faults = r.h.Snapshot()
	vs := Check(ops, faults, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	vs = append(vs, r.procs...)
	if r.reported == nil {
		r.reported = map[string]bool{}
	}
	for _, v := range vs {
		if r.reported[v.Detail] {
			continue
		}
		r.reported[v.Detail] = true
		fmt.Fprintf(r.cfg.Log, "VIOLATION %s (seed %d): %s\n", v.Invariant, r.cfg.Seed, v.Detail)
		if !r.cfg.KeepGoing {
			r.stopped = true
		}
	}
	return vs
}

// settle waits until the pool shows the truth again, up to d.
func (r *runner) settle(ctx context.Context, d time.Duration) {
	_ = r.m.awaitTruth(ctx, d)
}

// leaks checks invariant 5 at the end: once the clients are gone, each
// proxy's open fds are back near what they were before the load.
func (r *runner) leaks() []Violation {
	var out []Violation
	gws := len(r.c.serving())
	for _, p := range r.c.liveProxies() {
		if p.fds <= 0 {
			continue // restarted during the run: no baseline
		}
		bound := p.fds + 8*gws + 16
		deadline := time.Now().Add(10 * time.Second)
		n := openFDs(p.proc.PID())
		for n > bound && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			n = openFDs(p.proc.PID())
		}
		if n > bound {
			out = append(out, Violation{InvProcess, fmt.Sprintf("proxy %s holds %d fds after the load, %d before it (bound %d)", p.name, n, p.fds, bound), r.h.Now()})
		}
	}
	return out
}

// fillRecovery computes, for every fault, how long throughput took to be
// back at 90% of what it was before the fault, from the history.
func (r *runner) fillRecovery(ops []Op, faults []Fault, end int64) {
	const bucket = 250
	okAt := make([]int, end/bucket+1)
	for _, o := range ops {
		if o.Kind == OpStateless && o.OK() && o.End < end {
			okAt[o.End/bucket]++
		}
	}
	rate := func(from, to int64) float64 { // ok calls per bucket over [from, to)
		a, b := max(from/bucket, 0), min(to/bucket, int64(len(okAt)))
		if b <= a {
			return 0
		}
		sum := 0
		for _, n := range okAt[a:b] {
			sum += n
		}
		return float64(sum) / float64(b-a)
	}
	for i, f := range faults {
		done := f.End
		if f.Kind == FaultJoinGateway {
			done = f.T
		}
		if done == 0 || f.Recovered {
			continue
		}
		base := rate(f.T-3000, f.T)
		for t := done; t+bucket <= end; t += bucket {
			if rate(t, t+bucket) >= 0.9*base {
				r.h.UpdateFault(i, func(f *Fault) { f.Recovered, f.ThroughputMs = true, t+bucket-done })
				break
			}
		}
	}
}

func (r *runner) result() *Result {
	vs := r.check()
	ops, faults := r.h.Snapshot()
	res := &Result{Seed: r.cfg.Seed, Faults: faults, Violations: vs, Errors: map[string]int{}, DurationMs: r.h.Now(), Ops: ops,
		Stalls: r.h.Stalls()}
	if res.Stalls == nil {
		res.Stalls = []Stall{}
	}
	if res.Violations == nil {
		res.Violations = []Violation{}
	}
	type cartKey struct{ w, c int }
	lost := map[cartKey]bool{}
	for _, o := range ops {
		if o.OK() {
			res.CallsOK++
		} else {
			res.CallsFailed++
			res.Errors[o.Code]++
		}
		switch {
		case o.Kind == OpCartNew && o.OK():
			res.Sessions.Started++
		case o.Kind == OpCartRead && o.OK():
			res.Sessions.Verified++
		case o.Code == "SESSION_LOST" && (o.Kind == OpCartAdd || o.Kind == OpCartRead) && !lost[cartKey{o.Worker, o.Cart}]:
			lost[cartKey{o.Worker, o.Cart}] = true
			res.Sessions.Lost++
		}
	}
	res.Sessions.LostWithDeadOwner = res.Sessions.Lost
	for _, v := range vs {
		switch v.Invariant {
		case InvMisrouted:
			res.Sessions.Misrouted++
		case InvLostNoCause:
			res.Sessions.LostWithDeadOwner--
		}
	}
	res.Sessions.Verified -= res.Sessions.Misrouted
	return res
}

// monitor polls every live proxy's pool and records, for each fault, when
// the pools showed the truth of the fault's target again after its last
// change: every live proxy routes to a gateway target exactly when it
// serves (running, not stopped, not draining), and a proxy target, once
// back, routes to exactly the gateways that serve. A fault is judged by
// its own target: under a dense schedule some other target is always in
// flux somewhere.
type monitor struct {
	c    *cluster
	h    *History
	hc   *http.Client
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	open      map[int]openFault // faults whose target's truth is not shown yet
	all       bool              // the last sample agreed on every target
	changedAt int64             // ms of the last change
}

type openFault struct {
	since  int64 // ms of the fault's last change
	target string
}

func newMonitor(c *cluster, h *History) *monitor {
	m := &monitor{c: c, h: h, hc: &http.Client{Timeout: time.Second}, stop: make(chan struct{}), done: make(chan struct{}),
		open: map[int]openFault{}}
	go m.run()
	return m
}

func (m *monitor) halt() {
	close(m.stop)
	<-m.done
	m.hc.CloseIdleConnections()
}

// changed says fault i just started or was undone.
// It is reset before the fault is watched: a sample taken after the
// change may mark it recovered at once.
func (m *monitor) changed(i int) {
	m.h.UpdateFault(i, func(f *Fault) { f.PoolRecovered = false })
	m.mu.Lock()
	now := m.h.Now()
	m.open[i] = openFault{since: now, target: m.h.Fault(i).Target}
	m.all, m.changedAt = false, now
	m.mu.Unlock()
}

func (m *monitor) run() {
	defer close(m.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		began := m.h.Now()
		v := m.sample()
		now := m.h.Now()
		m.mu.Lock()
		if m.changedAt < began {
			m.all = v.all
		}
		for i, o := range m.open {
			if o.since >= began {
				continue // the sample may predate the change: it says nothing of it
			}
			if diff, ok := v.wrong[o.target]; ok {
				m.h.UpdateFault(i, func(f *Fault) { f.PoolDiff = diff })
				continue
			}
			m.h.UpdateFault(i, func(f *Fault) { f.PoolRecovered, f.PoolTruthMs = true, now-o.since })
			delete(m.open, i)
		}
		m.mu.Unlock()
	}
}

// view is one sample of every live proxy's pool against the truth.
type view struct {
	all   bool              // every proxy shows the truth of every target
	wrong map[string]string // target (a gateway, or a proxy) → how a pool gets it wrong
}

// sample compares every live proxy's pool with the gateways that should
// serve through it (those that serve and are not cut off from it).
func (m *monitor) sample() view {
	v := view{all: true, wrong: map[string]string{}}
	for _, p := range m.c.liveProxies() {
		truth := m.c.servingFor(p.name)
		slices.Sort(truth)
		got, pool, err := poolServing(m.hc, p)
		if err != nil {
			v.all = false
			v.wrong[p.name] = fmt.Sprintf("%s: %v", p.name, err)
			continue
		}
		if slices.Equal(got, truth) {
			continue
		}
		v.all = false
		diff := fmt.Sprintf("%s serves %v, want %v; its pool: %+v", p.name, got, truth, pool)
		v.wrong[p.name] = diff
		for _, g := range symmetricDiff(got, truth) {
			v.wrong[g] = diff
		}
	}
	return v
}

// symmetricDiff returns the names in exactly one of two sorted lists.
func symmetricDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// awaitTruth waits until every pool shows the truth, up to d.
func (m *monitor) awaitTruth(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		all := m.all
		m.mu.Unlock()
		if all || m.sample().all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("chaos: the proxies' pools do not show the %d serving gateways after %v", len(m.c.serving()), d)
}

// stallGap is how late a 50 ms tick must be to count as a stall.
const stallGap = time.Second

// watchStalls records in h every time this process did not run for over
// stallGap, until the returned function is called.
func watchStalls(h *History) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		last := h.Now()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			now := h.Now()
			if now-last > stallGap.Milliseconds() {
				h.AddStall(Stall{From: last, To: now})
			}
			last = now
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
