package discovery

import (
	"testing"
	"time"
)

// chanSource is a Source whose snapshots the test sends.
type chanSource struct{ ch chan Snapshot }

func (s chanSource) Updates() <-chan Snapshot { return s.ch }
func (s chanSource) Snapshot() Snapshot       { return Snapshot{} }
func (s chanSource) Close() error             { return nil }

// TestControl: Run hands snapshots to Apply in order, runs Rebuild after
// a kick (also one made before Run) and Sweep on each tick, keeps running
// when the source's channel closes, and returns when stop is closed.
func TestControl(t *testing.T) {
	src := chanSource{ch: make(chan Snapshot)}
	tick := make(chan time.Time)
	stop := make(chan struct{})
	events := make(chan string, 16)
	c := NewControl()
	c.Kick() // before Run: kept
	c.Kick() // pending: the same rebuild
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(src, stop, Handlers{
			Apply:   func(s Snapshot) { events <- "apply " + s.Members()[0].Name },
			Rebuild: func() { events <- "rebuild" },
			Tick:    tick,
			Sweep:   func() { events <- "sweep" },
		})
	}()
	next := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q", want)
		}
	}
	next("rebuild")
	src.ch <- NewSnapshot(1, []Member{{Name: "gw1", Role: RoleGateway}})
	next("apply gw1")
	src.ch <- NewSnapshot(2, []Member{{Name: "gw2", Role: RoleGateway}})
	next("apply gw2")
	tick <- time.Now()
	next("sweep")
	close(src.ch)
	c.Kick()
	next("rebuild")
	select {
	case e := <-events:
		t.Fatalf("unexpected %q: two kicks before Run made two rebuilds", e)
	default:
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stop")
	}
}
