package health

import (
	"fmt"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// Defaults. Every config field's doc repeats its default; these names keep
// the numbers in one place.
const (
	defaultCheckInterval = time.Second
	defaultCheckTimeout  = time.Second
	defaultRise          = 2 // HAProxy's default
	defaultFall          = 3 // HAProxy's default
	defaultInitialState  = InitUp

	defaultOutlierInterval     = 10 * time.Second // Envoy, gRFC A50
	defaultConsecutiveFailures = 5                // Envoy consecutive_5xx
	defaultOutlierFailureRate  = 0.85             // Envoy failure_percentage_threshold, gRFC A50
	defaultMinRequests         = 50               // Envoy failure_percentage_request_volume, gRFC A50
	defaultBaseEjectionTime    = 30 * time.Second // Envoy, gRFC A50
	defaultMaxEjectionTime     = 300 * time.Second
	defaultMaxEjectionPercent  = 50

	defaultMaxConcurrent     = 1024 // Envoy max_requests
	defaultWindow            = 10 * time.Second
	defaultBuckets           = 10
	defaultBreakerRate       = 0.5
	defaultMinCalls          = 20
	defaultOpenTimeout       = 5 * time.Second
	defaultHalfOpenMax       = 3
	defaultHalfOpenSuccesses = 3

	defaultPanicThreshold = 0.5 // Envoy healthy_panic_threshold
)

// InitialState is the state a target is in before its first probe, with the
// meanings of HAProxy's init-state server keyword.
type InitialState string

const (
	// InitUp: the target is up, and the first probe decides: a failure takes
	// it down at once, a success confirms it and from then on Fall failures
	// are needed. This is the default, as in HAProxy.
	InitUp InitialState = "up"
	// InitFullyUp: the target is up and needs Fall failures to go down.
	InitFullyUp InitialState = "fully-up"
	// InitDown: the target is down, and the first probe decides: a success
	// brings it up at once.
	InitDown InitialState = "down"
	// InitFullyDown: the target is down and needs Rise successes to come up.
	InitFullyDown InitialState = "fully-down"
)

// CheckerConfig configures active health checks. The zero value of every
// field means its default; hooks and the clock are not part of the file
// format.
type CheckerConfig struct {
	// Interval is the time between two probe rounds (default 1s).
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout bounds one probe (default 1s). A probe still running at its
	// timeout counts as failed and its context is cancelled.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Rise is the number of consecutive successful probes that bring a down
	// target up (default 2).
	Rise int `yaml:"rise,omitempty" json:"rise,omitempty"`
	// Fall is the number of consecutive failed probes that take an up target
	// down (default 3).
	Fall int `yaml:"fall,omitempty" json:"fall,omitempty"`
	// InitialState is the state of a newly added target (default "up"; see
	// InitialState). Up is the default because a gateway joins the pool only
	// once it advertises itself ready, because starting down would leave a
	// freshly started proxy with no backend for Rise intervals, and because
	// the first probe still takes a dead target down within one interval.
	InitialState InitialState `yaml:"initial_state,omitempty" json:"initial_state,omitempty"`

	// Clock tells the time (default clock.Real).
	Clock clock.Clock `yaml:"-" json:"-"`
	// OnTransition, if set, is told each time a target goes up or down. See
	// Checker for when it is called.
	OnTransition func(Transition) `yaml:"-" json:"-"`
}

// DefaultCheckerConfig returns the defaults, filled in.
func DefaultCheckerConfig() CheckerConfig { return CheckerConfig{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c CheckerConfig) WithDefaults() CheckerConfig {
	setDefault(&c.Interval, defaultCheckInterval)
	setDefault(&c.Timeout, defaultCheckTimeout)
	setDefault(&c.Rise, defaultRise)
	setDefault(&c.Fall, defaultFall)
	setDefault(&c.InitialState, defaultInitialState)
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c CheckerConfig) Validate() error { return c.validate("") }

func (c CheckerConfig) validate(prefix string) error {
	c = c.WithDefaults()
	switch {
	case c.Interval < 0:
		return fieldErr(prefix, "interval", "must not be negative, got %v", c.Interval)
	case c.Timeout < 0:
		return fieldErr(prefix, "timeout", "must not be negative, got %v", c.Timeout)
	case c.Rise < 0:
		return fieldErr(prefix, "rise", "must not be negative, got %d", c.Rise)
	case c.Fall < 0:
		return fieldErr(prefix, "fall", "must not be negative, got %d", c.Fall)
	}
	switch c.InitialState {
	case InitUp, InitFullyUp, InitDown, InitFullyDown:
	default:
		return fieldErr(prefix, "initial_state", "must be up, fully-up, down or fully-down, got %q", c.InitialState)
	}
	return nil
}

// OutlierConfig configures passive outlier detection. The zero value of every
// field means its default.
type OutlierConfig struct {
	// Interval is the time between two sweeps (default 10s). A sweep judges
	// the failure rate of the calls since the previous sweep, returns the
	// targets whose ejection is over, and decays ejection counts.
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// ConsecutiveFailures ejects a target after that many failed calls in a
	// row, without waiting for the sweep (default 5; negative disables).
	ConsecutiveFailures int `yaml:"consecutive_failures,omitempty" json:"consecutive_failures,omitempty"`
	// FailureRate ejects, at a sweep, a target whose share of failed calls
	// over the interval exceeds it (default 0.85, as Envoy's
	// failure_percentage_threshold and gRFC A50; negative disables). It is
	// higher than the breaker's rate on purpose: the breaker reacts to a
	// sick gateway within seconds, ejection is for one that is broken.
	FailureRate float64 `yaml:"failure_rate,omitempty" json:"failure_rate,omitempty"`
	// MinRequests is the number of calls a target must have seen in the
	// interval for FailureRate to apply (default 50).
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// BaseEjectionTime is the length of a first ejection (default 30s). The
	// n-th ejection in a row lasts n×BaseEjectionTime.
	BaseEjectionTime time.Duration `yaml:"base_ejection_time,omitempty" json:"base_ejection_time,omitempty"`
	// MaxEjectionTime caps the length of an ejection (default 300s; must not
	// be less than BaseEjectionTime).
	MaxEjectionTime time.Duration `yaml:"max_ejection_time,omitempty" json:"max_ejection_time,omitempty"`
	// MaxEjectionPercent caps the targets ejected at once, as a percentage of
	// the pool rounded down (default 50: one of 2 or 3 targets, two of 4).
	// It is checked as Envoy does: an ejection happens only if the ejected
	// count after it is at most MaxEjectionPercent of the pool. So a pool of
	// one target is never ejected unless AlwaysEjectOne is set.
	MaxEjectionPercent int `yaml:"max_ejection_percent,omitempty" json:"max_ejection_percent,omitempty"`
	// AlwaysEjectOne lets one target be ejected even when MaxEjectionPercent
	// rounds down to zero (default false, as Envoy's always_eject_one_host).
	// Off by default: ejecting the only gateway of a pool turns slow or
	// flaky calls into certain failures (Envoy #17504), and the breaker
	// already sheds load from it.
	AlwaysEjectOne bool `yaml:"always_eject_one,omitempty" json:"always_eject_one,omitempty"`

	// Clock tells the time (default clock.Real).
	Clock clock.Clock `yaml:"-" json:"-"`
	// OnEjection, if set, is told of every ejection and return. See
	// Detector for when it is called.
	OnEjection func(Ejection) `yaml:"-" json:"-"`
}

// DefaultOutlierConfig returns the defaults, filled in.
func DefaultOutlierConfig() OutlierConfig { return OutlierConfig{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c OutlierConfig) WithDefaults() OutlierConfig {
	setDefault(&c.Interval, defaultOutlierInterval)
	setDefault(&c.ConsecutiveFailures, defaultConsecutiveFailures)
	setDefault(&c.FailureRate, defaultOutlierFailureRate)
	setDefault(&c.MinRequests, defaultMinRequests)
	setDefault(&c.BaseEjectionTime, defaultBaseEjectionTime)
	setDefault(&c.MaxEjectionTime, defaultMaxEjectionTime)
	setDefault(&c.MaxEjectionPercent, defaultMaxEjectionPercent)
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c OutlierConfig) Validate() error { return c.validate("") }

func (c OutlierConfig) validate(prefix string) error {
	c = c.WithDefaults()
	switch {
	case c.Interval < 0:
		return fieldErr(prefix, "interval", "must not be negative, got %v", c.Interval)
	case c.FailureRate > 1:
		return fieldErr(prefix, "failure_rate", "must be at most 1, got %v", c.FailureRate)
	case c.MinRequests < 0:
		return fieldErr(prefix, "min_requests", "must not be negative, got %d", c.MinRequests)
	case c.BaseEjectionTime < 0:
		return fieldErr(prefix, "base_ejection_time", "must not be negative, got %v", c.BaseEjectionTime)
	case c.MaxEjectionTime < c.BaseEjectionTime:
		return fieldErr(prefix, "max_ejection_time", "must not be less than base_ejection_time (%v), got %v", c.BaseEjectionTime, c.MaxEjectionTime)
	case c.MaxEjectionPercent < 0 || c.MaxEjectionPercent > 100:
		return fieldErr(prefix, "max_ejection_percent", "must be between 0 and 100, got %d", c.MaxEjectionPercent)
	}
	return nil
}

// Settings configures a circuit breaker, as gobreaker's Settings do. The zero
// value of every field means its default.
type Settings struct {
	// MaxConcurrent caps the calls admitted and not yet done (default 1024,
	// as Envoy's max_requests). Past it, Allow returns ErrTooMany.
	MaxConcurrent int `yaml:"max_concurrent,omitempty" json:"max_concurrent,omitempty"`
	// Window is the span of the rolling window whose failure rate trips the
	// breaker (default 10s).
	Window time.Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// Buckets is the number of slices the window is kept in (default 10, so
	// 1s each); old calls leave the window one bucket at a time.
	Buckets int `yaml:"buckets,omitempty" json:"buckets,omitempty"`
	// FailureRate opens the breaker when the share of failed calls in the
	// window exceeds it (default 0.5; 1 never trips).
	FailureRate float64 `yaml:"failure_rate,omitempty" json:"failure_rate,omitempty"`
	// MinCalls is the number of calls the window must hold before
	// FailureRate applies (default 20).
	MinCalls int `yaml:"min_calls,omitempty" json:"min_calls,omitempty"`
	// OpenTimeout is how long the breaker stays open before it lets probe
	// calls through (default 5s).
	OpenTimeout time.Duration `yaml:"open_timeout,omitempty" json:"open_timeout,omitempty"`
	// HalfOpenMax caps the probe calls in flight while half-open (default 3).
	HalfOpenMax int `yaml:"half_open_max,omitempty" json:"half_open_max,omitempty"`
	// HalfOpenSuccesses is the number of successful probe calls that close a
	// half-open breaker (default 3). Any failed probe reopens it.
	HalfOpenSuccesses int `yaml:"half_open_successes,omitempty" json:"half_open_successes,omitempty"`

	// Clock tells the time (default clock.Real).
	Clock clock.Clock `yaml:"-" json:"-"`
	// OnStateChange, if set, is told of every transition, with the name
	// given to NewBreaker. It runs under the breaker's lock, so transitions
	// arrive in order and one at a time: it must be quick and must not call
	// the breaker (send to a channel to rebuild a picker).
	OnStateChange func(name string, from, to State) `yaml:"-" json:"-"`
}

// DefaultSettings returns the breaker defaults, filled in.
func DefaultSettings() Settings { return Settings{}.WithDefaults() }

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	setDefault(&s.MaxConcurrent, defaultMaxConcurrent)
	setDefault(&s.Window, defaultWindow)
	setDefault(&s.Buckets, defaultBuckets)
	setDefault(&s.FailureRate, defaultBreakerRate)
	setDefault(&s.MinCalls, defaultMinCalls)
	setDefault(&s.OpenTimeout, defaultOpenTimeout)
	setDefault(&s.HalfOpenMax, defaultHalfOpenMax)
	setDefault(&s.HalfOpenSuccesses, defaultHalfOpenSuccesses)
	s.Clock = clock.OrReal(s.Clock)
	return s
}

// Validate reports the first invalid field, after defaults are applied.
func (s Settings) Validate() error { return s.validate("") }

func (s Settings) validate(prefix string) error {
	s = s.WithDefaults()
	switch {
	case s.MaxConcurrent < 0:
		return fieldErr(prefix, "max_concurrent", "must not be negative, got %d", s.MaxConcurrent)
	case s.Window < 0:
		return fieldErr(prefix, "window", "must not be negative, got %v", s.Window)
	case s.Buckets < 0:
		return fieldErr(prefix, "buckets", "must not be negative, got %d", s.Buckets)
	case s.Window/time.Duration(s.Buckets) < time.Millisecond:
		return fieldErr(prefix, "buckets", "window %v split in %d buckets gives buckets under 1ms", s.Window, s.Buckets)
	case s.FailureRate < 0 || s.FailureRate > 1:
		return fieldErr(prefix, "failure_rate", "must be between 0 and 1, got %v", s.FailureRate)
	case s.MinCalls < 0:
		return fieldErr(prefix, "min_calls", "must not be negative, got %d", s.MinCalls)
	case s.OpenTimeout < 0:
		return fieldErr(prefix, "open_timeout", "must not be negative, got %v", s.OpenTimeout)
	case s.HalfOpenMax < 0:
		return fieldErr(prefix, "half_open_max", "must not be negative, got %d", s.HalfOpenMax)
	case s.HalfOpenSuccesses < 0:
		return fieldErr(prefix, "half_open_successes", "must not be negative, got %d", s.HalfOpenSuccesses)
	}
	return nil
}

// Config gathers the health settings of a pool, as they appear in a config
// file. The zero value of every field means its default.
type Config struct {
	Check   CheckerConfig `yaml:"check,omitempty" json:"check,omitzero"`
	Outlier OutlierConfig `yaml:"outlier,omitempty" json:"outlier,omitzero"`
	Breaker Settings      `yaml:"breaker,omitempty" json:"breaker,omitzero"`
	// PanicThreshold is the share of healthy targets under which the
	// balancer spreads calls over the whole pool (default 0.5; negative
	// disables panic mode). See Eligible.
	PanicThreshold float64 `yaml:"panic_threshold,omitempty" json:"panic_threshold,omitempty"`
}

// DefaultConfig returns the defaults, filled in.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Check = c.Check.WithDefaults()
	c.Outlier = c.Outlier.WithDefaults()
	c.Breaker = c.Breaker.WithDefaults()
	c.PanicThreshold = panicThreshold(c.PanicThreshold)
	return c
}

// Validate reports the first invalid field, after defaults are applied, as
// "health: breaker.failure_rate: ...".
func (c Config) Validate() error {
	if err := c.Check.validate("check."); err != nil {
		return err
	}
	if err := c.Outlier.validate("outlier."); err != nil {
		return err
	}
	if err := c.Breaker.validate("breaker."); err != nil {
		return err
	}
	if c.PanicThreshold > 1 {
		return fieldErr("", "panic_threshold", "must be at most 1, got %v", c.PanicThreshold)
	}
	return nil
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

func fieldErr(prefix, field, format string, args ...any) error {
	return fmt.Errorf("health: %s%s: %s", prefix, field, fmt.Sprintf(format, args...))
}
