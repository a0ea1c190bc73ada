package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/client"
)

// openLoopGrace is how long after the end an open loop keeps sending calls
// that were due before it; what is still unsent then is calls_unsent.
const openLoopGrace = time.Second

// Run is a load run in progress: Start it, Mark what happens to the pool
// during it, and Wait for its report. Its methods are safe for concurrent
// use.
type Run struct {
	// Immutable after Start.
	cfg   Config
	env   *env
	conns []*client.Conn
	start time.Time
	end   time.Time // start + Duration

	stop     chan struct{} // closed when the run stops sending
	stopOnce sync.Once
	stopAt   atomic.Int64  // unix nanoseconds of the stop
	done     chan struct{} // closed when every user has finished
	users    sync.WaitGroup
	helpers  sync.WaitGroup // the timer and the progress line

	interrupted atomic.Bool
	next        atomic.Int64 // open loop: index of the next due call
	sent        atomic.Int64 // open loop: due calls sent

	reportOnce sync.Once
	report     *Report
}

// Start dials the target and starts the users. The run stops after
// cfg.Duration, when ctx ends, or at Stop; Wait returns its report.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conns := make([]*client.Conn, 0, cfg.Conns)
	for range cfg.Conns {
		c, err := client.Dial(ctx, cfg.Target, cfg.Client)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, fmt.Errorf("bench: dial %s: %w", cfg.Target, err)
		}
		conns = append(conns, c)
	}
	r := &Run{cfg: cfg, conns: conns, stop: make(chan struct{}), done: make(chan struct{})}
	r.start = time.Now()
	r.end = r.start.Add(cfg.Duration)
	r.env = &env{cfg: cfg, rec: newRecorder(r.start, cfg.Bucket), marks: &marks{}}
	for i := range cfg.Concurrency {
		u := r.env.newUser(i, conns[i%len(conns)])
		r.users.Add(1)
		go r.drive(u)
	}
	go func() {
		r.users.Wait()
		close(r.done)
	}()
	r.helpers.Add(1)
	go r.timer(ctx)
	if cfg.Progress != nil {
		r.helpers.Add(1)
		go r.progress()
	}
	return r, nil
}

// Stop ends the run before its duration; the report says interrupted.
func (r *Run) Stop() {
	if time.Now().Before(r.end) {
		r.interrupted.Store(true)
	}
	r.stopOnce.Do(func() {
		r.stopAt.Store(time.Now().UnixNano())
		close(r.stop)
	})
}

// Elapsed returns the time since the start.
func (r *Run) Elapsed() time.Duration { return time.Since(r.start) }

// Done is closed when every user has finished (after the stop).
func (r *Run) Done() <-chan struct{} { return r.done }

// Mark records an event now. A kill or term event also counts the
// sessions on its gateway from now on (Report.SessionsOnTarget) and starts
// the recovery clock (Report.RecoveryMs).
func (r *Run) Mark(kind, gateway string) Event {
	now := time.Now()
	ev := Event{TMs: now.Sub(r.start).Milliseconds(), Kind: kind, Gateway: gateway}
	r.env.marks.add(&mark{Event: ev, at: now})
	return ev
}

// timer stops the run at its end or when ctx ends.
func (r *Run) timer(ctx context.Context) {
	defer r.helpers.Done()
	t := time.NewTimer(r.cfg.Duration)
	defer t.Stop()
	select {
	case <-t.C:
		r.Stop()
	case <-ctx.Done():
		r.Stop()
	case <-r.stop:
	}
}

func (r *Run) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// drive runs one user until the stop, then lets it finish its session.
func (r *Run) drive(u user) {
	defer r.users.Done()
	if r.cfg.Rate > 0 {
		r.openLoop(u)
	} else {
		for !r.stopped() {
			u.step(time.Now())
		}
	}
	u.finish()
}

// due returns when call idx of the open loop is due.
func (r *Run) due(idx int64) time.Time {
	return r.start.Add(time.Duration(float64(idx) * float64(time.Second) / r.cfg.Rate))
}

// openLoop takes due calls from the shared schedule: latency counts from
// when a call was due, so a user that is late (the target stalled, every
// user was busy) measures the wait too.
func (r *Run) openLoop(u user) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		idx := r.next.Add(1) - 1
		due := r.due(idx)
		if !due.Before(r.end) {
			<-r.stop // sessions in progress are finished after the end, not before
			return
		}
		if r.stopped() {
			stopAt := time.Unix(0, r.stopAt.Load())
			if !due.Before(stopAt) || time.Since(stopAt) > openLoopGrace {
				return
			}
		}
		if wait := time.Until(due); wait > 0 {
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			select {
			case <-t.C:
			case <-r.stop:
				if !t.Stop() {
					<-t.C
				}
				if !due.Before(time.Unix(0, r.stopAt.Load())) {
					return
				}
			}
		}
		r.sent.Add(1)
		u.step(due)
	}
}

// Wait waits for the end of the run and for every user to finish its
// session, closes the connections and returns the report.
func (r *Run) Wait() *Report {
	r.reportOnce.Do(func() {
		<-r.done
		r.helpers.Wait()
		for _, c := range r.conns {
			_ = c.Close()
		}
		r.report = r.makeReport()
	})
	return r.report
}

func (r *Run) makeReport() *Report {
	cfg := r.cfg
	rep := &Report{
		Label: cfg.Label, Target: cfg.Target, Workload: cfg.Workload, Mode: cfg.mode(),
		Conns: cfg.Conns, Concurrency: cfg.Concurrency, Rate: cfg.Rate, Interrupted: r.interrupted.Load(),
	}
	r.env.rec.finish(time.Now(), rep)
	if cfg.Workload.hasSessions() {
		s := rep.sessions
		rep.Sessions = &s
	}
	if cfg.Rate > 0 {
		stopAt := min(time.Unix(0, r.stopAt.Load()).Sub(r.start), cfg.Duration)
		dueCalls := int64(math.Ceil(stopAt.Seconds() * cfg.Rate))
		rep.CallsUnsent = max(dueCalls-r.sent.Load(), 0)
	}
	for _, m := range r.env.marks.snapshot() {
		rep.events = append(rep.events, m.Event)
		if rep.SessionsOnTarget != nil || (m.Kind != EventKill && m.Kind != EventTerm) {
			continue
		}
		n := m.onTarget
		rep.SessionsOnTarget = &n
		ms, ok := recovery(rep.Series, cfg.Bucket, time.Duration(m.TMs)*time.Millisecond, cfg.Duration)
		rep.RecoveryMs = &ms
		if !ok {
			rep.Recovered = &ok
		}
	}
	return rep
}

// Event kinds.
const (
	EventKill = "kill" // SIGKILL
	EventTerm = "term" // SIGTERM: the gateway drains
	EventStop = "stop" // the process exited
	EventJoin = "join" // a gateway joined the pool
)

// marks are the events of a run, with the count of sessions that lived on
// the event's gateway at or after it.
type marks struct {
	mu   sync.Mutex
	list []*mark
}

type mark struct {
	Event
	at       time.Time
	onTarget int64
}

func (ms *marks) add(m *mark) {
	ms.mu.Lock()
	ms.list = append(ms.list, m)
	ms.mu.Unlock()
}

// sessionEnded counts a session that ended at end on the gateway of every
// kill or term event before its end. A session lost before any result
// named its gateway counts too: the proxy loses only the sessions of a
// gateway that is gone.
func (ms *marks) sessionEnded(info sessionInfo, o outcome, end time.Time) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, m := range ms.list {
		if m.Kind != EventKill && m.Kind != EventTerm || end.Before(m.at) {
			continue
		}
		if slices.Contains(info.owners, m.Gateway) || (info.owner == "" && o == lost) {
			m.onTarget++
		}
	}
}

// drained reports whether a term event was marked for gateway.
func (ms *marks) drained(gateway string) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, m := range ms.list {
		if m.Kind == EventTerm && m.Gateway == gateway {
			return true
		}
	}
	return false
}

func (ms *marks) snapshot() []mark {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]mark, len(ms.list))
	for i, m := range ms.list {
		out[i] = *m
	}
	return out
}
