package gateway

import (
	"errors"
	"net"

	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// NATS is a gateway's subscription to the NATS transport: the calls of its
// modules that the proxies route over NATS reach it there and run over an
// in-process connection (a pipe the gateway serves as a proxy connection),
// so they meet the same admission, limits, deadlines and drain as calls
// from a proxy.
type NATS struct {
	sub    *transport.Subscriber
	link   *transport.Link
	served chan struct{} // closed when the gateway stopped serving the pipe
	left   chan struct{} // closed by Close
	done   chan struct{} // closed when the watcher ended
}

// ServeNATS subscribes the gateway to NATS with cfg (Gateway, Modules and
// Exec are filled in: the gateway's name, its modules unless cfg names
// some, and the pipe). It leaves NATS when the gateway starts draining or
// stops, or on Close.
func (g *Gateway) ServeNATS(cfg transport.SubscriberConfig) (*NATS, error) {
	if !g.acquire() {
		return nil, ErrClosed
	}
	a, b := net.Pipe()
	n := &NATS{served: make(chan struct{}), left: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer g.wg.Done()
		defer close(n.served)
		g.serve(protocol.NewStreamConn(b, g.connOpts), nil, nil, "nats")
	}()
	link, err := transport.NewLink(a, "graftlb-nats/1", protocol.Limits{MaxFrame: g.cfg.Limits.MaxFrame})
	if err != nil {
		_ = b.Close()
		<-n.served
		return nil, err
	}
	n.link = link
	cfg.Gateway, cfg.Exec = g.cfg.Name, link
	if len(cfg.Modules) == 0 {
		cfg.Modules = g.Modules()
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = g.cfg.Limits.MaxFrame
	}
	if cfg.Logger == nil {
		l := g.log.With().Str("transport", "nats").Logger()
		cfg.Logger = &l
	}
	if n.sub, err = transport.Subscribe(cfg); err != nil {
		_ = link.Close()
		<-n.served
		return nil, err
	}
	go n.watch(g)
	return n, nil
}

// watch leaves NATS when the gateway drains or stops, or on Close: no new
// call is taken, the calls running finish, then the pipe closes.
func (n *NATS) watch(g *Gateway) {
	defer close(n.done)
	select {
	case <-g.Draining():
	case <-g.Done():
	case <-n.left:
	case <-n.served:
	}
	n.sub.Close()
	_ = n.link.Close()
	<-n.served
}

// Subscribed reports whether the gateway still takes calls from NATS (it
// stops when it drains, stops, or on Close).
func (n *NATS) Subscribed() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Counters are the subscriber's counters: calls run, bad input, expired.
func (n *NATS) Counters() *transport.Counters { return &n.sub.Counters }

// Close leaves NATS (as a drain does) and waits until the calls taken from
// it have been answered.
func (n *NATS) Close() error {
	select {
	case <-n.left:
		return errors.New("gateway: nats already closed")
	default:
		close(n.left)
	}
	<-n.done
	return nil
}
