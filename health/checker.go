package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// Probe checks one target once and returns nil if it is healthy. It must
// return soon after ctx is done; one that does not still counts as failed at
// its timeout, but it holds back the next probe of its target and Close.
type Probe func(ctx context.Context) error

// CheckState is what active checks think of a target.
type CheckState uint8

const (
	// Down: the target failed Fall probes in a row (or its first one).
	Down CheckState = iota
	// Up: the target passed Rise probes in a row (or its first one).
	Up
)

func (s CheckState) String() string {
	if s == Up {
		return "up"
	}
	return "down"
}

// MarshalText writes the state as "up" or "down".
func (s CheckState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Transition is a target going up or down.
type Transition struct {
	Target   string
	From, To CheckState
	At       time.Time
	// Err is the failure that took the target down; nil when it came up.
	Err error
}

var (
	// ErrProbeTimeout is the failure recorded for a probe still running at
	// its timeout.
	ErrProbeTimeout = errors.New("health: probe timed out")
	// ErrProbeStuck is the failure recorded, in place of a new probe, while
	// a timed-out probe has still not returned.
	ErrProbeStuck = errors.New("health: previous probe still running")
	// ErrClosed is returned by Add after Close.
	ErrClosed = errors.New("health: closed")
)

// Checker runs active health checks: every Interval it probes each target
// once, and after Fall consecutive failures a target goes down, after Rise
// consecutive successes it comes up (HAProxy's rise and fall).
//
// The periodic step is the plain method Round; Start adds a goroutine that
// calls it on a ticker, and tests call it themselves. Each target also has
// one long-lived prober goroutine, because probes block on the network: one
// goroutine for all of them would let a slow target delay the others, and a
// goroutine per probe would leave Close nothing to wait for. Since a target's
// probes all run on its prober, they never overlap.
//
// OnTransition is called from Round, on the goroutine running it, for one
// transition at a time and in order; rounds never run concurrently. It should
// be quick, since the round waits for it; it may call Add, Remove, State and
// Status, but not Round or Close. All methods are safe for concurrent use.
type Checker struct {
	// cfg is the current config, swapped whole by SetConfig: a round reads
	// it once at its start.
	cfg    atomic.Pointer[CheckerConfig]
	reset  chan struct{}   // capacity 1; SetConfig pokes the loop to take a new Interval
	clk    clock.Clock     // immutable after NewChecker
	ctx    context.Context // done after Close; parent of every probe's context
	cancel context.CancelFunc

	// roundMu serialises rounds.
	roundMu sync.Mutex

	mu      sync.Mutex
	targets map[string]*target
	started bool
	closed  bool

	wg sync.WaitGroup // the ticker loop and the probers
}

type target struct {
	// Immutable after Add.
	name   string
	probe  Probe
	work   chan probeReq   // to the prober; capacity 1, used only while !busy
	ctx    context.Context // done after Remove or Close
	cancel context.CancelFunc

	// busy is set by Round before it hands a probe to the prober, and
	// cleared by the prober before it reports the result.
	busy atomic.Bool

	// Guarded by Checker.mu.
	removed   bool
	state     CheckState
	fresh     bool // no probe yet, and the initial state lets the first one decide
	successes int  // consecutive
	failures  int  // consecutive
	lastCheck time.Time
	lastErr   error
}

type probeReq struct {
	ctx context.Context
	out chan<- probeResult
	i   int
}

type probeResult struct {
	i   int
	err error
}

// NewChecker returns a Checker with no targets and no goroutine running.
func NewChecker(cfg CheckerConfig) (*Checker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{
		reset:   make(chan struct{}, 1),
		clk:     cfg.Clock,
		ctx:     ctx,
		cancel:  cancel,
		targets: make(map[string]*target),
	}
	c.cfg.Store(&cfg)
	return c, nil
}

// SetConfig replaces the checker's settings, for a reload: the next round
// probes with the new Timeout and judges with the new Rise and Fall, the
// ticker takes the new Interval at once, and targets added from now on
// start in the new InitialState. A target's state and counts stay. The
// clock and OnTransition stay those given to NewChecker.
func (c *Checker) SetConfig(cfg CheckerConfig) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	old := c.cfg.Load()
	cfg.Clock, cfg.OnTransition = old.Clock, old.OnTransition
	c.cfg.Store(&cfg)
	if cfg.Interval != old.Interval {
		select {
		case c.reset <- struct{}{}:
		default: // a reset is pending; it reads the newest config
		}
	}
	return nil
}

// Config returns the checker's current settings.
func (c *Checker) Config() CheckerConfig { return *c.cfg.Load() }

// Add starts checking a target, in the configured initial state. Its first
// probe comes with the next round.
func (c *Checker) Add(name string, p Probe) error {
	if p == nil {
		return fmt.Errorf("health: target %q: nil probe", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if _, ok := c.targets[name]; ok {
		return fmt.Errorf("health: target %q already added", name)
	}
	t := &target{name: name, probe: p, work: make(chan probeReq, 1)}
	t.ctx, t.cancel = context.WithCancel(c.ctx)
	switch c.cfg.Load().InitialState {
	case InitUp:
		t.state, t.fresh = Up, true
	case InitFullyUp:
		t.state = Up
	case InitDown:
		t.state, t.fresh = Down, true
	case InitFullyDown:
		t.state = Down
	}
	c.targets[name] = t
	c.wg.Add(1)
	go c.runProber(t)
	return nil
}

// Remove stops checking a target and reports whether it was there. A probe
// of it that is running is cancelled; its result, and any transition it would
// have caused, are dropped.
func (c *Checker) Remove(name string) bool {
	c.mu.Lock()
	t, ok := c.targets[name]
	if ok {
		delete(c.targets, name)
		t.removed = true
	}
	c.mu.Unlock()
	if ok {
		t.cancel()
	}
	return ok
}

// Start runs Round every Interval on a goroutine of the Checker's own, until
// Close. It does nothing if already started or closed.
func (c *Checker) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	c.wg.Add(1)
	go c.run()
}

func (c *Checker) run() {
	defer c.wg.Done()
	tk := c.clk.NewTicker(c.cfg.Load().Interval)
	defer func() { tk.Stop() }()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tk.C():
			c.Round()
		case <-c.reset:
			tk.Stop()
			tk = c.clk.NewTicker(c.cfg.Load().Interval)
		}
	}
}

// Close stops the ticker loop and the probers, cancels running probes and
// waits for every goroutine of the Checker to end. A probe that ignores its
// context delays Close until it returns.
func (c *Checker) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// Round probes every target once, all at the same time, and records the
// results. It returns once each probe has answered or timed out, or at Close.
// A target whose previous probe timed out and has still not returned is not
// probed again: it is recorded as failed with ErrProbeStuck.
func (c *Checker) Round() {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	// Dispatch under mu, so that a target removed from now on finds its
	// request in work when its prober drains it on the way out.
	c.mu.Lock()
	if len(c.targets) == 0 {
		c.mu.Unlock()
		return
	}
	ts := make([]*target, 0, len(c.targets))
	for _, t := range c.targets {
		ts = append(ts, t)
	}
	// Sorted, so that transitions within a round come in a stable order.
	slices.SortFunc(ts, func(a, b *target) int { return strings.Compare(a.name, b.name) })
	cfg := c.cfg.Load()
	timer := c.clk.NewTimer(cfg.Timeout) // armed before any probe starts
	defer timer.Stop()
	out := make(chan probeResult, len(ts)) // room for every result: probers never block
	cancels := make([]context.CancelFunc, len(ts))
	defer func() {
		for _, cancel := range cancels {
			if cancel != nil {
				cancel()
			}
		}
	}()
	var stuck []*target
	waiting := 0
	for i, t := range ts {
		if t.busy.Load() {
			stuck = append(stuck, t)
			continue
		}
		var ctx context.Context
		ctx, cancels[i] = context.WithCancel(t.ctx)
		t.busy.Store(true)
		t.work <- probeReq{ctx: ctx, out: out, i: i} // never blocks: an idle prober has emptied work
		waiting++
	}
	c.mu.Unlock()
	for _, t := range stuck {
		c.record(t, ErrProbeStuck)
	}
	answered := make([]bool, len(ts))
	for waiting > 0 {
		select {
		case r := <-out:
			answered[r.i] = true
			waiting--
			cancels[r.i]()
			c.record(ts[r.i], r.err)
		case <-timer.C():
			for i, t := range ts {
				if cancels[i] != nil && !answered[i] {
					cancels[i]()
					c.record(t, ErrProbeTimeout)
				}
			}
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// runProber runs the probes of one target, one at a time, until the target is
// removed or the Checker closed.
func (c *Checker) runProber(t *target) {
	defer c.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			select {
			case req := <-t.work: // dispatched before the removal: answer it, so that Round need not wait
				t.busy.Store(false)
				req.out <- probeResult{i: req.i, err: t.ctx.Err()}
			default:
			}
			return
		case req := <-t.work:
			err := runProbe(req.ctx, t.probe)
			t.busy.Store(false)
			req.out <- probeResult{i: req.i, err: err}
		}
	}
}

// runProbe turns a panicking probe into a failed one, as Caddy's checker does.
func runProbe(ctx context.Context, p Probe) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("health: probe panicked: %v", r)
		}
	}()
	return p(ctx)
}

// record counts one probe result and reports a transition, if any. Only the
// goroutine running Round calls it.
func (c *Checker) record(t *target, err error) {
	now := c.clk.Now()
	c.mu.Lock()
	if t.removed {
		c.mu.Unlock()
		return
	}
	from := t.state
	cfg := c.cfg.Load()
	t.observeLocked(err, cfg.Rise, cfg.Fall)
	t.lastCheck, t.lastErr = now, err
	to := t.state
	c.mu.Unlock()
	if from != to && cfg.OnTransition != nil {
		cfg.OnTransition(Transition{Target: t.name, From: from, To: to, At: now, Err: err})
	}
}

// observeLocked applies rise and fall to one result. Caller must hold
// Checker.mu.
func (t *target) observeLocked(err error, rise, fall int) {
	if err == nil {
		t.failures = 0
		t.successes++
		if t.state == Down && (t.fresh || t.successes >= rise) {
			t.state = Up
		}
	} else {
		t.successes = 0
		t.failures++
		if t.state == Up && (t.fresh || t.failures >= fall) {
			t.state = Down
		}
	}
	t.fresh = false
}

// State returns a target's state, and false if it is not checked.
func (c *Checker) State(name string) (CheckState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.targets[name]
	if !ok {
		return Down, false
	}
	return t.state, true
}

// Targets returns the names of the checked targets, sorted.
func (c *Checker) Targets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.targets))
	for name := range c.targets {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Status returns a copy of a target's check state, and false if it is not
// checked.
func (c *Checker) Status(name string) (CheckStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.targets[name]
	if !ok {
		return CheckStatus{}, false
	}
	s := CheckStatus{
		State:                t.state,
		ConsecutiveSuccesses: t.successes,
		ConsecutiveFailures:  t.failures,
		LastCheck:            t.lastCheck,
		Probing:              t.busy.Load(),
	}
	if t.lastErr != nil {
		s.LastError = t.lastErr.Error()
	}
	return s, true
}
