package discovery

import (
	"fmt"
	"slices"
	"strconv"
)

// Role says what a member does in the cluster.
type Role uint8

// Roles. The zero Role is invalid: every member says what it is. A newer
// node may announce a role this version does not know; it is kept as a
// Role value that prints as "role(N)" and is neither a gateway nor a proxy.
const (
	RoleGateway Role = 1 // executes calls; the balancer routes to it
	RoleProxy   Role = 2 // a graftlb proxy; never a routing target
)

// String returns "gateway", "proxy" or "role(N)".
func (r Role) String() string {
	switch r {
	case RoleGateway:
		return "gateway"
	case RoleProxy:
		return "proxy"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText encodes the role as its String.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText accepts "gateway" and "proxy".
func (r *Role) UnmarshalText(b []byte) error {
	switch string(b) {
	case "gateway":
		*r = RoleGateway
	case "proxy":
		*r = RoleProxy
	default:
		return fmt.Errorf("discovery: unknown role %q", b)
	}
	return nil
}

// State says whether a member admits new sessions.
type State uint8

// States. A draining gateway keeps serving the sessions it holds but refuses
// new ones, so the balancer skips it when it places a new session. The zero
// State is Ready.
const (
	StateReady    State = 0
	StateDraining State = 1
)

// String returns "ready", "draining" or "state(N)".
func (s State) String() string {
	switch s {
	case StateReady:
		return "ready"
	case StateDraining:
		return "draining"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the state as its String.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts "ready" and "draining".
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ready":
		*s = StateReady
	case "draining":
		*s = StateDraining
	default:
		return fmt.Errorf("discovery: unknown state %q", b)
	}
	return nil
}

// InstanceID identifies one run of a gossiping process. Each process draws a
// random non-zero id at start, so a gateway that restarts under the same name
// is a new member: the balancer must treat (Name, Instance) as the identity
// and consider every session bound to the old instance lost. Members from
// static lists and DNS have no instance id (zero).
type InstanceID uint64

// String returns the id as 16 hex digits.
func (id InstanceID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// MarshalText encodes the id as its String (JSON numbers lose 64-bit precision).
func (id InstanceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses 1 to 16 hex digits.
func (id *InstanceID) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("discovery: instance id %q: %w", b, err)
	}
	*id = InstanceID(v)
	return nil
}

// Addrs are a member's listeners, each as host:port; empty means "none".
type Addrs struct {
	// TCP is the Hypertube TCP listener.
	TCP string `json:"tcp,omitempty"`
	// WS is the HTTP listener that serves WebSocket on /ws.
	WS string `json:"ws,omitempty"`
	// HTTP is the HTTP listener of GET /status (gateways) or of the admin
	// API (proxies). Real GG serves /ws and /status on different ports.
	HTTP string `json:"http,omitempty"`
	// Gossip is the memberlist address. It comes from memberlist itself,
	// not from the metadata, and is empty for static and DNS members.
	Gossip string `json:"gossip,omitempty"`
	// TLS says the TCP and WS listeners speak TLS (tls:// and wss://; the
	// HTTP listener is not covered). A static entry says it by its scheme;
	// a gossiping gateway with a certificate announces it in its metadata.
	TLS bool `json:"tls,omitempty"`
}

// DefaultWeight is the weight of a member that does not set one.
const DefaultWeight = 1

// MaxWeight is the largest weight a member may announce.
const MaxWeight = 1 << 16

// Member is one node of the pool as a snapshot saw it. It is a value: the
// discovery package never changes a Member it has handed out, and the
// Modules slice it shares must not be modified.
type Member struct {
	// Name is unique in the cluster: the memberlist node name, or the
	// host:port (or name= option) of a static or DNS backend.
	Name string `json:"name"`
	// Role is gateway or proxy; static and DNS members are gateways.
	Role Role `json:"role"`
	// Addrs are the member's listeners.
	Addrs Addrs `json:"addrs"`
	// Modules lists what the member serves ("orders@1"), sorted and
	// without duplicates. Empty means unknown, which the balancer must
	// treat as "serves every module" (see Serves): real GG behind a static
	// list or DNS does not say what it hosts.
	Modules []string `json:"modules,omitempty"`
	// Weight scales the member's share of new sessions and stateless
	// calls; 1 to MaxWeight, 0 in input means DefaultWeight.
	Weight int `json:"weight"`
	// State is ready or draining.
	State State `json:"state"`
	// Zone is an optional locality label.
	Zone string `json:"zone,omitempty"`
	// Instance tells two runs of the same Name apart; zero when unknown.
	Instance InstanceID `json:"instance,omitempty"`
}

// Serves reports whether the member serves module ("orders@1"). A member
// with no module list serves everything.
func (m Member) Serves(module string) bool {
	if len(m.Modules) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(m.Modules, module)
	return ok
}

// Equal reports whether m and o describe the same member in the same state.
func (m Member) Equal(o Member) bool {
	return m.Name == o.Name && m.Role == o.Role && m.Addrs == o.Addrs &&
		m.Weight == o.Weight && m.State == o.State && m.Zone == o.Zone &&
		m.Instance == o.Instance && slices.Equal(m.Modules, o.Modules)
}

// normalized returns m with DefaultWeight for a zero weight and its modules
// sorted and deduplicated, in a slice of its own.
func (m Member) normalized() Member {
	if m.Weight == 0 {
		m.Weight = DefaultWeight
	}
	if len(m.Modules) > 0 {
		mods := slices.Clone(m.Modules)
		slices.Sort(mods)
		m.Modules = slices.Compact(mods)
	} else {
		m.Modules = nil
	}
	return m
}
