package health

import (
	"slices"
	"time"
)

// TargetStatus is the admin API's view of one target (GET /pool). Each part is
// nil when the pool does not run that mechanism or does not know the target.
type TargetStatus struct {
	Name string `json:"name"`
	// Healthy is what panic mode counts: up (or not checked) and not ejected.
	Healthy bool           `json:"healthy"`
	Check   *CheckStatus   `json:"check,omitempty"`
	Outlier *OutlierStatus `json:"outlier,omitempty"`
	Breaker *BreakerStatus `json:"breaker,omitempty"`
}

// CheckStatus is a target's active-check state.
type CheckStatus struct {
	State                CheckState `json:"state"`
	ConsecutiveSuccesses int        `json:"consecutive_successes"`
	ConsecutiveFailures  int        `json:"consecutive_failures"`
	LastCheck            time.Time  `json:"last_check,omitzero"`
	LastError            string     `json:"last_error,omitempty"`
	// Probing is true while a probe runs, or a timed-out one has not returned.
	Probing bool `json:"probing"`
}

// OutlierStatus is a target's outlier-detection state.
type OutlierStatus struct {
	Ejected      bool        `json:"ejected"`
	Reason       EjectReason `json:"reason,omitzero"`
	EjectedUntil time.Time   `json:"ejected_until,omitzero"`
	// Ejections is the ejection count that sets the next ejection's length.
	Ejections           int `json:"ejection_count"`
	ConsecutiveFailures int `json:"consecutive_failures"`
	// Successes and Failures are the calls counted since the last sweep.
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
}

// BreakerStatus is a circuit breaker's state and counts.
type BreakerStatus struct {
	State      State  `json:"state"`
	Generation uint64 `json:"generation"`
	InFlight   int    `json:"in_flight"`
	// WindowSuccesses and WindowFailures are the rolling window's counts,
	// while closed.
	WindowSuccesses int `json:"window_successes"`
	WindowFailures  int `json:"window_failures"`
	// OpenUntil is when an open breaker turns half-open.
	OpenUntil time.Time `json:"open_until,omitzero"`
	// Probes and ProbeSuccesses are the half-open calls in flight and the
	// successes so far, while half-open.
	Probes         int `json:"probes"`
	ProbeSuccesses int `json:"probe_successes"`
}

// Snapshot gathers the status of every target known to any of c, d and
// breakers, sorted by name. Any of them may be nil.
func Snapshot(c *Checker, d *Detector, breakers map[string]*Breaker) []TargetStatus {
	var names []string
	if c != nil {
		names = append(names, c.Targets()...)
	}
	if d != nil {
		names = append(names, d.Targets()...)
	}
	for name := range breakers {
		names = append(names, name)
	}
	slices.Sort(names)
	names = slices.Compact(names)

	out := make([]TargetStatus, 0, len(names))
	for _, name := range names {
		ts := TargetStatus{Name: name, Healthy: true}
		if c != nil {
			if s, ok := c.Status(name); ok {
				ts.Check = &s
				ts.Healthy = s.State == Up
			}
		}
		if d != nil {
			if s, ok := d.Status(name); ok {
				ts.Outlier = &s
				ts.Healthy = ts.Healthy && !s.Ejected
			}
		}
		if b := breakers[name]; b != nil {
			s := b.Status()
			ts.Breaker = &s
		}
		out = append(out, ts)
	}
	return out
}
