package balancer

import (
	"errors"
	"slices"
)

// Errors Ready returns.
var (
	ErrNotStarted = errors.New("balancer: not started")
	ErrNoGateway  = errors.New("balancer: no gateway in the pool can take calls")
	ErrDraining   = errors.New("balancer: draining")
)

// Ready reports whether the proxy should get new clients: it is started,
// not draining, and at least one gateway of its pool takes new work. An
// L4 balancer in front (HAProxy's httpchk, a Kubernetes readiness probe)
// reads it through the admin API's /readyz, so that a proxy with an empty
// or dead pool takes no traffic while /healthz (liveness) stays OK.
func (p *Proxy) Ready() error {
	p.mu.Lock()
	started, closed := p.started, p.closed
	p.mu.Unlock()
	switch {
	case !started || closed:
		return ErrNotStarted
	case p.draining.Load():
		return ErrDraining
	}
	if !slices.Contains(p.picker.Load().admit, true) {
		return ErrNoGateway
	}
	return nil
}

// settling reports whether the proxy started less than PoolSettle ago,
// while its view of the pool may still be incomplete.
func (p *Proxy) settling() bool {
	at := p.startedAt.Load()
	return at == 0 || p.now()-at < int64(p.cfg.PoolSettle)
}
