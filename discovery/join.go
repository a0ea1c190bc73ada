package discovery

import (
	"errors"
	"sync"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/gateway"
)

// Membership is an embedded gateway's place in a gossip pool, made by
// JoinGateway. It mirrors the gateway's drain into gossip and leaves the
// pool when the gateway stops. Its methods are safe for concurrent use.
type Membership struct {
	// Immutable after JoinGateway.
	gw   *gateway.Gateway
	gs   *Gossip
	log  zerolog.Logger
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the member has left and shut down

	stopOnce sync.Once
	err      error // why leaving failed; written before done is closed
}

// JoinGateway announces the running gateway gw to a gossip pool, as
// `graftlb gateway --gossip` does, and returns once the member has started
// (see Gossip.Start: the seeds of cfg.Join are contacted once, and retried
// in the background if none answers).
//
// The member's name, role, listen addresses and modules are taken from gw
// (cfg.Local's Name, Role, Addrs and Modules are replaced); its weight,
// zone and instance come from cfg.Local, and the rest of cfg configures
// gossip as for NewGossip. gw must have been started and not stopped.
//
// The gateway learns the pool from the member (gateway.SetPool), so that a
// drain moves its sessions to the gateways that proxies will look for them
// on. A goroutine of the Membership then follows gw: when gw starts to drain
// it gossips StateDraining, so that proxies stop placing new sessions on
// it (gossiping waits up to cfg.BroadcastTimeout, which is why it does not
// run in Config.OnStateChange: GOAWAY is not held back by it); when gw has
// stopped, it leaves the pool (others drop the member at once instead of
// after failure detection) and shuts the member down. Close does the same
// at any time.
func JoinGateway(gw *gateway.Gateway, cfg Config) (*Membership, error) {
	if gw == nil {
		return nil, errors.New("discovery: JoinGateway: nil gateway")
	}
	switch gw.State() {
	case gateway.StateNew:
		return nil, errors.New("discovery: JoinGateway: gateway " + gw.Name() + " is not started")
	case gateway.StateStopped:
		return nil, errors.New("discovery: JoinGateway: gateway " + gw.Name() + " has stopped")
	}
	a := gw.Addrs()
	cfg.Local.Name = gw.Name()
	cfg.Local.Role = RoleGateway
	cfg.Local.Addrs = Addrs{TCP: a.TCP, WS: a.WS, HTTP: a.HTTP, TLS: a.TLS}
	cfg.Local.Modules = gw.Modules()
	if gw.State() == gateway.StateDraining {
		cfg.Local.State = StateDraining
	}
	gs, err := NewGossip(cfg)
	if err != nil {
		return nil, err
	}
	if err := gs.Start(); err != nil {
		_ = gs.Shutdown()
		return nil, err
	}
	m := &Membership{
		gw:   gw,
		gs:   gs,
		log:  orNop(cfg.Logger).With().Str("component", "discovery").Str("node", cfg.Local.Name).Logger(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	gw.SetPool(m.pool)
	go m.follow()
	return m, nil
}

// follow mirrors the gateway's lifecycle into gossip until the member has
// left. Owned by the Membership; Close waits for it.
func (m *Membership) follow() {
	defer close(m.done)
	select {
	case <-m.gw.Draining():
		if err := m.gs.SetState(StateDraining); err != nil {
			// The state stays set and spreads by gossip anyway.
			m.log.Warn().Err(err).Msg("discovery: gossiping the gateway's drain")
		}
		select {
		case <-m.gw.Done():
		case <-m.stop:
		}
	case <-m.gw.Done():
	case <-m.stop:
	}
	m.err = m.leave()
}

// pool returns the gateway members of the gossip pool, this one included,
// for the gateway's session handoff (gateway.SetPool).
func (m *Membership) pool() []gateway.PeerInfo {
	gws := m.gs.Snapshot().Gateways()
	out := make([]gateway.PeerInfo, 0, len(gws))
	for _, g := range gws {
		out = append(out, gateway.PeerInfo{Name: g.Name, TCP: g.Addrs.TCP, WS: g.Addrs.WS, TLS: g.Addrs.TLS, Modules: g.Modules,
			Weight: g.Weight, Draining: g.State == StateDraining})
	}
	return out
}

// leave leaves the pool, unless nobody is left to tell (Leave would wait
// its whole timeout), and shuts the member down; the gateway forgets the
// pool.
func (m *Membership) leave() error {
	m.gw.SetPool(nil)
	var errs []error
	if len(m.gs.Members()) > 1 {
		if err := m.gs.Leave(m.gs.cfg.BroadcastTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.gs.Shutdown(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Gossip returns the member, for its LocalAddr, Members and Updates (it is
// a Source of the pool's snapshots). Its state and lifecycle belong to the
// Membership: do not call SetState, Leave or Shutdown on it.
func (m *Membership) Gossip() *Gossip { return m.gs }

// Close leaves the pool now, whether or not the gateway still runs, shuts
// the member down and returns why leaving failed, if it did. It waits for
// a drain being gossiped to go out first. Later calls return the same.
func (m *Membership) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	return m.err
}

// Done is closed when the member has left the pool and shut down: after
// the gateway stopped, or after Close.
func (m *Membership) Done() <-chan struct{} { return m.done }
