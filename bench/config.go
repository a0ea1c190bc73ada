package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/graftlb/graftlb/client"
)

// Workload names what the virtual users do.
type Workload string

// The workloads (see the package doc).
const (
	Stateless Workload = "stateless"
	Stateful  Workload = "stateful"
	Mixed     Workload = "mixed"
	Sleep     Workload = "sleep"
)

// ParseWorkload returns the workload named s.
func ParseWorkload(s string) (Workload, error) {
	switch w := Workload(s); w {
	case Stateless, Stateful, Mixed, Sleep:
		return w, nil
	}
	return "", fmt.Errorf("bench: workload %q: want stateless, stateful, mixed or sleep", s)
}

// hasSessions reports whether the workload builds carts.
func (w Workload) hasSessions() bool { return w == Stateful || w == Mixed }

// Defaults of Config.
const (
	DefaultConns        = 8
	DefaultConcurrency  = 64
	DefaultDuration     = 10 * time.Second
	DefaultCallTimeout  = 5 * time.Second
	DefaultSessionCalls = 8
	DefaultMix          = 0.5
	DefaultSleepMin     = 5 * time.Millisecond
	DefaultSleepMax     = 20 * time.Millisecond
	DefaultBucket       = 250 * time.Millisecond
)

// Config describes one load run. Zero fields take the defaults above.
type Config struct {
	// Target is tcp://host:port, tls://host:port, ws://host:port[/ws] or
	// wss://host:port[/ws] (TLS under Client.TLS).
	Target string
	// Label names the run in reports ("direct", "graftlb", "gateways=4").
	Label string
	// Workload is what the users do (default stateless).
	Workload Workload
	// Conns is the number of client connections (default 8); user i uses
	// connection i mod Conns.
	Conns int
	// Concurrency is the number of virtual users (default 64).
	Concurrency int
	// Duration is how long calls are sent (default 10s). Sessions in
	// progress at the end are finished and verified after it.
	Duration time.Duration
	// Rate, when positive, makes the run an open loop of Rate calls per
	// second; zero is a closed loop.
	Rate float64
	// CallTimeout bounds each call (default 5s).
	CallTimeout time.Duration
	// SessionCalls is the number of AddItem calls in a cart session
	// (default 8); a session is SessionCalls+3 calls in all.
	SessionCalls int
	// SessionPause is how long a cart session waits before each call after
	// its first (default none): long-lived sessions that sit idle between
	// calls, as users do. Sessions finished after the end do not pause.
	SessionPause time.Duration
	// Mix is the share of stateless calls in the mixed workload (default
	// 0.5; negative means 0).
	Mix float64
	// Durable says the stateless workload's calls are routed nats:durable:
	// each result is then the receipt of a stored call (transport.Accepted),
	// checked for acceptance; the call itself runs later, on a gateway.
	Durable bool
	// SleepMin and SleepMax bound the simulated work of the sleep workload
	// (default 5ms to 20ms, uniform).
	SleepMin, SleepMax time.Duration
	// Bucket is the width of the time series (default 250ms).
	Bucket time.Duration
	// Progress, if set, receives a progress line every second, rewritten
	// in place with a carriage return (for terminals).
	Progress io.Writer
	// Client configures the connections; AutoReconnect is always on.
	Client client.Options
}

func (c Config) withDefaults() Config {
	if c.Workload == "" {
		c.Workload = Stateless
	}
	if c.Conns <= 0 {
		c.Conns = DefaultConns
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.SessionCalls <= 0 {
		c.SessionCalls = DefaultSessionCalls
	}
	if c.Mix == 0 {
		c.Mix = DefaultMix
	} else if c.Mix < 0 {
		c.Mix = 0
	}
	if c.SleepMin <= 0 && c.SleepMax <= 0 {
		c.SleepMin, c.SleepMax = DefaultSleepMin, DefaultSleepMax
	}
	c.SleepMax = max(c.SleepMax, c.SleepMin)
	if c.Bucket <= 0 {
		c.Bucket = DefaultBucket
	}
	c.Client.AutoReconnect = true
	return c
}

// Validate reports a configuration that cannot run.
func (c Config) Validate() error {
	var errs []error
	if c.Target == "" {
		errs = append(errs, errors.New("target: empty"))
	} else if _, err := client.ParseTarget(c.Target); err != nil {
		errs = append(errs, fmt.Errorf("target: %w", err))
	}
	if _, err := ParseWorkload(string(c.Workload)); c.Workload != "" && err != nil {
		errs = append(errs, err)
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate: %v is negative", c.Rate))
	}
	if c.Mix > 1 {
		errs = append(errs, fmt.Errorf("mix: %v is over 1", c.Mix))
	}
	if c.SessionPause < 0 {
		errs = append(errs, errors.New("session pause: negative duration"))
	}
	if c.SleepMin < 0 || c.SleepMax < 0 {
		errs = append(errs, errors.New("sleep: negative duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: config: %w", err)
	}
	return nil
}

// mode names the loop for reports.
func (c Config) mode() string {
	if c.Rate > 0 {
		return "open"
	}
	return "closed"
}
