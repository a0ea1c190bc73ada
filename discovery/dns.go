package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/clock"
)

// DNSConfig configures a DNS source. The zero value of every field but
// Target means its default.
type DNSConfig struct {
	// Target is one backend entry in the ParseBackends syntax whose host is
	// a DNS name, e.g. "tcp://gg.pool.svc:8990#weight=2" or
	// "ws://gg.pool.svc:80/ws#http=:81". Every address the name resolves
	// to becomes a member named "IP:PORT"; name= is not allowed and http=
	// must be ":PORT".
	Target string `json:"target"`
	// Interval between resolutions. Default 5s.
	Interval time.Duration `json:"interval,omitempty"`
	// Timeout of one resolution. Default 2s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Resolve returns the addresses of host. Default
	// net.DefaultResolver.LookupHost; tests inject a function.
	Resolve func(ctx context.Context, host string) ([]string, error) `json:"-"`
	// Clock drives the re-resolution ticker. Default clock.Real.
	Clock clock.Clock `json:"-"`
	// Logger receives resolution errors and changes. Default: no logs.
	Logger *zerolog.Logger `json:"-"`
}

// DefaultDNSInterval is the default DNSConfig.Interval.
const DefaultDNSInterval = 5 * time.Second

// DefaultDNSTimeout is the default DNSConfig.Timeout.
const DefaultDNSTimeout = 2 * time.Second

// DefaultDNSConfig returns a config for target with every default set.
func DefaultDNSConfig(target string) DNSConfig {
	return DNSConfig{Target: target}.withDefaults()
}

func (c DNSConfig) withDefaults() DNSConfig {
	if c.Interval == 0 {
		c.Interval = DefaultDNSInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultDNSTimeout
	}
	if c.Resolve == nil {
		c.Resolve = net.DefaultResolver.LookupHost
	}
	c.Clock = clock.OrReal(c.Clock)
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c DNSConfig) Validate() error {
	c = c.withDefaults()
	if c.Interval < 0 {
		return fmt.Errorf("discovery: dns interval: %v is negative", c.Interval)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("discovery: dns timeout: %v is negative", c.Timeout)
	}
	_, err := c.spec()
	return err
}

func (c DNSConfig) spec() (backendSpec, error) {
	spec, err := parseBackend(c.Target)
	if err != nil {
		return spec, fmt.Errorf("discovery: dns target: %w", err)
	}
	if spec.name != "" {
		return spec, fmt.Errorf("discovery: dns target %q: name= is not allowed: members are named IP:PORT", c.Target)
	}
	if spec.http != "" && spec.http[0] != ':' {
		return spec, fmt.Errorf("discovery: dns target %q: http= must be :PORT", c.Target)
	}
	return spec, nil
}

// DNS is a Source that resolves a name periodically. It publishes a
// snapshot only when the set of addresses changes; a failed resolution
// keeps the previous snapshot and is logged.
type DNS struct {
	// Immutable after NewDNS.
	feed   *feed
	ctx    context.Context // canceled by Close; bounds resolutions
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	reset  chan struct{} // capacity 1; Reconfigure pokes run to take a new Interval

	// refreshMu serializes Refresh, whether the ticker or a test calls it,
	// and guards the config, which Reconfigure changes.
	refreshMu sync.Mutex
	cfg       DNSConfig
	spec      backendSpec
	log       zerolog.Logger
}

var _ Source = (*DNS)(nil)

// NewDNS resolves the target once, synchronously, and starts a goroutine
// that resolves it again every Interval until Close. A failed first
// resolution is logged, not returned: the source starts empty (Snapshot
// version 0, nothing on Updates) and retries on the next tick.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	spec, _ := cfg.spec()
	ctx, cancel := context.WithCancel(context.Background())
	d := &DNS{
		cfg:    cfg,
		spec:   spec,
		log:    dnsLogger(cfg),
		feed:   newFeed(),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		reset:  make(chan struct{}, 1),
	}
	_, _ = d.Refresh(ctx) // logged inside
	// The ticker exists before NewDNS returns, so a test that advances a
	// fake clock right after cannot miss it.
	ticker := cfg.Clock.NewTicker(cfg.Interval)
	go d.run(ticker)
	return d, nil
}

func dnsLogger(cfg DNSConfig) zerolog.Logger {
	return orNop(cfg.Logger).With().Str("component", "discovery.dns").Str("target", cfg.Target).Logger()
}

func (d *DNS) run(ticker clock.Ticker) {
	defer close(d.done)
	defer func() { ticker.Stop() }()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-ticker.C():
			_, _ = d.Refresh(d.ctx)
		case <-d.reset:
			ticker.Stop()
			d.refreshMu.Lock()
			ticker = d.cfg.Clock.NewTicker(d.cfg.Interval)
			d.refreshMu.Unlock()
		}
	}
}

// Reconfigure changes the target, the interval and the timeout, for a
// reload (the resolver, clock and logger stay), and resolves the new
// target at once: a failed resolution keeps the current pool, as on every
// tick. An invalid config changes nothing.
func (d *DNS) Reconfigure(target string, interval, timeout time.Duration) error {
	d.refreshMu.Lock()
	cfg := d.cfg
	cfg.Target, cfg.Interval, cfg.Timeout = target, interval, timeout
	if err := cfg.Validate(); err != nil {
		d.refreshMu.Unlock()
		return err
	}
	cfg = cfg.withDefaults()
	changed := cfg.Interval != d.cfg.Interval
	d.cfg = cfg
	d.spec, _ = cfg.spec()
	d.log = dnsLogger(cfg)
	d.refreshMu.Unlock()
	if changed {
		select {
		case d.reset <- struct{}{}:
		default:
		}
	}
	_, _ = d.Refresh(d.ctx) // logged inside
	return nil
}

// Config returns the source's current config.
func (d *DNS) Config() DNSConfig {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	return d.cfg
}

// Refresh resolves the target now and publishes a snapshot if the set of
// members changed; it reports whether it did. On error the previous
// snapshot stays. The ticker calls it; tests may call it directly.
func (d *DNS) Refresh(ctx context.Context) (changed bool, err error) {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	addrs, err := d.cfg.Resolve(ctx, d.spec.host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		err = fmt.Errorf("discovery: resolve %s: %w", d.spec.host, err)
		prev := d.feed.snapshot()
		d.log.Warn().Err(err).Int("keeping_members", prev.Len()).Uint64("keeping_version", prev.Version()).
			Msg("discovery: DNS resolution failed; keeping the previous pool")
		return false, err
	}
	members := make([]Member, 0, len(addrs))
	for _, a := range addrs {
		members = append(members, d.spec.member(a))
	}
	// Equal IPs give equal names; NewSnapshot keeps one of each.
	if !d.feed.publish(members) {
		return false, nil
	}
	s := d.feed.snapshot()
	d.log.Info().Uint64("version", s.Version()).Strs("members", memberNames(s)).Msg("discovery: DNS pool changed")
	return true, nil
}

func memberNames(s Snapshot) []string {
	names := make([]string, 0, s.Len())
	for _, m := range s.Members() {
		names = append(names, m.Name)
	}
	return slices.Clip(names)
}

// Updates implements Source.
func (d *DNS) Updates() <-chan Snapshot { return d.feed.ch }

// Snapshot implements Source.
func (d *DNS) Snapshot() Snapshot { return d.feed.snapshot() }

// Close stops the resolution goroutine, waits for it and closes Updates.
// It is safe to call more than once.
func (d *DNS) Close() error {
	d.cancel()
	<-d.done
	d.feed.close()
	return nil
}
