package discovery

import "time"

// Control is the event loop of a balancer's control goroutine, the one
// goroutine that changes what its pickers read (balancer.Proxy and
// passthrough.Proxy run theirs with it): Run hands each snapshot of a
// Source and each kick and tick to its Handlers, one at a time, so that
// none needs a lock against the others.
type Control struct {
	kick chan struct{}
}

// Handlers are what a Control runs.
type Handlers struct {
	// Apply is given each membership snapshot, in order. When the source's
	// Updates channel closes, the last pool stays.
	Apply func(Snapshot)
	// Rebuild runs after Kick; kicks that come while one is pending make
	// one Rebuild.
	Rebuild func()
	// Tick, when not nil, runs Sweep each time it fires.
	Tick  <-chan time.Time
	Sweep func()
}

// NewControl returns a Control; Kick may be called from then on, before
// Run too.
func NewControl() *Control { return &Control{kick: make(chan struct{}, 1)} }

// Kick asks for a Rebuild without waiting. Any goroutine may call it.
func (c *Control) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run follows src with h until stop is closed.
func (c *Control) Run(src Source, stop <-chan struct{}, h Handlers) {
	updates := src.Updates()
	for {
		select {
		case <-stop:
			return
		case snap, ok := <-updates:
			if !ok {
				updates = nil // the source closed: keep the last pool
				continue
			}
			h.Apply(snap)
		case <-c.kick:
			h.Rebuild()
		case <-h.Tick:
			h.Sweep()
		}
	}
}
