package balancer

import (
	"errors"
	"sync"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// What an operator does to a running proxy through the admin API: drain a
// gateway from the proxy's side, look a session up, read the effective
// configuration.

// ErrUnknownGateway is what DrainGateway returns for a name not in the pool.
var ErrUnknownGateway = errors.New("balancer: no gateway of that name in the pool")

// operatorState remembers the gateways an operator drained, by name, so
// that a drained gateway that comes back as a new instance stays drained.
type operatorState struct {
	mu    sync.Mutex
	names map[string]bool
}

func (o *operatorState) setDrained(name string, on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.names == nil {
		o.names = map[string]bool{}
	}
	if on {
		o.names[name] = true
	} else {
		delete(o.names, name)
	}
}

func (o *operatorState) drained(name string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.names[name]
}

// DrainGateway stops (on) or resumes (off) placing new sessions and
// stateless calls on gateway name, from this proxy's side only, the way
// HAProxy's "set server state drain" does: the sessions it holds keep
// their calls going there, and the gateway itself is not told. It returns
// once the proxy routes accordingly.
func (p *Proxy) DrainGateway(name string, on bool) error {
	b := p.backendNamed(name)
	if b == nil {
		return ErrUnknownGateway
	}
	p.operator.setDrained(name, on)
	if b.adminDrain.Swap(on) != on {
		if on {
			p.cfg.Logger.Info().Str("gateway", name).Msg("drained by an operator: no new sessions or stateless calls")
		} else {
			p.cfg.Logger.Info().Str("gateway", name).Msg("undrained by an operator")
		}
	}
	p.kick()
	// The control goroutine publishes the picker; wait (briefly) for it.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		pk := p.picker.Load()
		for i, pb := range pk.backends {
			if pb == b && (!on || !pk.admit[i]) {
				return nil
			}
		}
		if !on {
			return nil // not admitted for another reason (down, ejected)
		}
	}
	return nil
}

// SessionInfo is what the proxy knows of one session, for the admin API's
// GET /sessions/{id}.
type SessionInfo struct {
	ID string `json:"id"`
	// Gateway is the gateway the session is bound to ("" when unbound);
	// Confirmed says that gateway answered one of its calls, so the
	// binding is for good.
	Gateway   string `json:"gateway"`
	Confirmed bool   `json:"confirmed"`
	Lost      bool   `json:"lost"`
	// Connected says a client connection of this proxy uses the session.
	Connected bool      `json:"connected"`
	LastUsed  time.Time `json:"last_used"`
	// Preference is the session's preference list: the gateways of the
	// pool in the order its placement tries them.
	Preference []string `json:"preference"`
	// Skipped are the gateways placement passed over before the one it is
	// bound to, and why.
	Skipped []SkippedGateway `json:"skipped,omitempty"`
}

// SkippedGateway is a gateway that placement passed over.
type SkippedGateway struct {
	Gateway string `json:"gateway"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
}

// skipReasons say in words why placement skips a gateway, by the code
// refused records.
var skipReasons = map[protocol.Code]string{
	protocol.CodeNotOwner:    "it answered NOT_OWNER: it does not hold the session",
	protocol.CodeDraining:    "it is draining and takes no new sessions",
	protocol.CodeOverloaded:  "it was overloaded and refused a new session",
	protocol.CodeCircuitOpen: "its circuit breaker was open",
	protocol.CodeUnavailable: "it could not be reached (no connection, or it died before answering)",
}

// Session returns what the proxy knows of session id.
func (p *Proxy) Session(id protocol.SessionID) (SessionInfo, bool) {
	s := p.sessions.lookup(id)
	if s == nil {
		return SessionInfo{}, false
	}
	info := SessionInfo{ID: id.String(), Connected: s.client.Load().get() != nil,
		LastUsed: time.Unix(0, s.lastUsed.Load())}
	s.mu.Lock()
	if s.owner != nil {
		info.Gateway = s.owner.name
	}
	info.Confirmed, info.Lost = s.confirmed, s.lost
	for i, b := range s.tried {
		why := protocol.CodeUnavailable
		if i < len(s.why) {
			why = s.why[i]
		}
		info.Skipped = append(info.Skipped, SkippedGateway{Gateway: b.name, Code: why.String(), Reason: skipReasons[why]})
	}
	s.mu.Unlock()
	pk := p.picker.Load()
	if pk.table != nil {
		for _, i := range pk.table.Preference(s.key, nil) {
			info.Preference = append(info.Preference, pk.backends[i].name)
		}
	}
	return info, true
}

// Config returns the proxy's effective configuration, defaults filled in.
// It holds no secret (loggers and clocks are not part of its JSON).
func (p *Proxy) Config() Config { return *p.conf() }
