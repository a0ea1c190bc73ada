package demo

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// outcome is how one look at a session ended.
type outcome int

const (
	verified   outcome = iota // its state read back exactly, from its owner
	lost                      // SESSION_LOST
	misroute                  // misrouted
	failed                    // another error
	unfinished                // the demo stopped first
)

func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return verified
	case errors.Is(err, errStopped):
		return unfinished
	case errors.Is(err, protocol.ErrSessionLost):
		return lost
	case errors.Is(err, cart.ErrMisrouted):
		return misroute
	default:
		return failed
	}
}

// codeOf names the error of a failed call for the tallies (client.Code).
func codeOf(err error) string { return client.Code(err) }

// tally counts what happened during one step. Every load goroutine adds to
// the tally of the current step.
type tally struct {
	mu          sync.Mutex
	calls       int64            // calls answered with a result
	servedBy    map[string]int64 // calls by the gateway their result names
	statelessBy map[string]int64 // stateless calls by gateway
	failed      map[string]int64 // failed calls by error code
	retried     int64            // UNAVAILABLE answers tried again
	wrong       int64            // stateless results with the wrong content
	started     int64            // sessions whose first call was sent
	placedBy    map[string]int64 // sessions by the gateway that answered their first AddItem
	sessions    [unfinished + 1]int64
	lostBy      map[string]int64 // lost sessions by owner ("" when never answered)
	notes       []string         // the first few misroutes and failures, for the report
}

func newTally() *tally {
	return &tally{servedBy: map[string]int64{}, statelessBy: map[string]int64{}, failed: map[string]int64{},
		placedBy: map[string]int64{}, lostBy: map[string]int64{}}
}

func (t *tally) served(gw string, stateless bool) {
	t.mu.Lock()
	t.calls++
	if gw != "" {
		t.servedBy[gw]++
	}
	if stateless {
		t.statelessBy[gw]++
	}
	t.mu.Unlock()
}

func (t *tally) note(format string, args ...any) {
	if len(t.notes) < 5 {
		t.notes = append(t.notes, fmt.Sprintf(format, args...))
	}
}

func (t *tally) fail(code string, err error) {
	t.mu.Lock()
	t.failed[code]++
	if code != protocol.CodeSessionLost.String() {
		t.note("call failed: %v", err)
	}
	t.mu.Unlock()
}

func (t *tally) retry() {
	t.mu.Lock()
	t.retried++
	t.mu.Unlock()
}

func (t *tally) wrongResult(msg string) {
	t.mu.Lock()
	t.wrong++
	t.note("wrong stateless result: %s", msg)
	t.mu.Unlock()
}

func (t *tally) sessionStarted() {
	t.mu.Lock()
	t.started++
	t.mu.Unlock()
}

func (t *tally) placed(gw string) {
	t.mu.Lock()
	t.placedBy[gw]++
	t.mu.Unlock()
}

func (t *tally) ended(o outcome, owner string, err error) {
	t.mu.Lock()
	t.sessions[o]++
	switch o {
	case lost:
		t.lostBy[owner]++
	case misroute, failed:
		t.note("session on %q: %v", owner, err)
	}
	t.mu.Unlock()
}

// counts is a copy of a tally at one moment.
type counts struct {
	Calls       int64
	ServedBy    map[string]int64
	StatelessBy map[string]int64
	Failed      map[string]int64
	Retried     int64
	Wrong       int64
	Started     int64
	PlacedBy    map[string]int64
	Verified    int64
	Lost        int64
	Misrouted   int64
	SessFailed  int64
	LostBy      map[string]int64
	Notes       []string
}

func (t *tally) snapshot() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := func(m map[string]int64) map[string]int64 {
		out := make(map[string]int64, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return counts{Calls: t.calls, ServedBy: cp(t.servedBy), StatelessBy: cp(t.statelessBy), Failed: cp(t.failed),
		Retried: t.retried, Wrong: t.wrong, Started: t.started, PlacedBy: cp(t.placedBy),
		Verified: t.sessions[verified], Lost: t.sessions[lost], Misrouted: t.sessions[misroute],
		SessFailed: t.sessions[failed], LostBy: cp(t.lostBy), Notes: slices.Clone(t.notes)}
}

// failedCalls is the number of failed calls, of any code.
func (c counts) failedCalls() int64 {
	var n int64
	for _, v := range c.Failed {
		n += v
	}
	return n
}

// drainWatch counts the sessions placed on gateway gw after since: a
// draining gateway must get none.
type drainWatch struct {
	gw    string
	since time.Time
	hits  atomic.Int64
}
