package gateway

// State is the lifecycle state of a gateway.
type State int32

const (
	// StateNew: created, not started.
	StateNew State = iota
	// StateReady: serving; admits new sessions.
	StateReady
	// StateDraining: GOAWAY sent; serves the sessions it holds, refuses
	// new ones with DRAINING, and stops once calls have been quiet.
	StateDraining
	// StateStopped: every listener and connection is closed.
	StateStopped
)

var stateNames = [...]string{"new", "ready", "draining", "stopped"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// State returns the gateway's current state.
func (g *Gateway) State() State { return State(g.state.Load()) }

// draining reports whether the gateway refuses new sessions.
func (g *Gateway) draining() bool { return g.State() >= StateDraining }

// transition moves the state to `to` if it is one of `from`, and reports
// whether it did. OnStateChange runs after the change, serialized by
// stateMu so that hooks see changes in order.
func (g *Gateway) transition(to State, from ...State) bool {
	g.stateMu.Lock()
	defer g.stateMu.Unlock()
	cur := g.State()
	for _, f := range from {
		if cur == f {
			g.state.Store(int32(to))
			g.log.Info().Str("from", cur.String()).Str("to", to.String()).Msg("state changed")
			if to == StateDraining {
				close(g.drainingCh)
			}
			if g.cfg.OnStateChange != nil {
				g.cfg.OnStateChange(cur, to)
			}
			return true
		}
	}
	return false
}
