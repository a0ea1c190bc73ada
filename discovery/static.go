package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Static is a Source for a pool listed by hand, such as real GG instances
// listed on the command line. It publishes its first snapshot (version 1)
// at once, and another at each Set that changes the members (a reload).
type Static struct {
	feed *feed
}

var _ Source = (*Static)(nil)

// NewStatic returns a Source whose only snapshot holds members. Members
// without a Role are gateways. members is not kept.
func NewStatic(members []Member) *Static {
	s := &Static{feed: newFeed()}
	s.Set(members)
	return s
}

// Set makes members the pool: the next snapshot, unless they equal the
// current ones. Members without a Role are gateways. members is not kept.
// It reports whether it published.
func (s *Static) Set(members []Member) bool {
	ms := make([]Member, len(members))
	for i, m := range members {
		if m.Role == 0 {
			m.Role = RoleGateway
		}
		ms[i] = m
	}
	return s.feed.publish(ms)
}

// Updates implements Source.
func (s *Static) Updates() <-chan Snapshot { return s.feed.ch }

// Snapshot implements Source.
func (s *Static) Snapshot() Snapshot { return s.feed.snapshot() }

// Close implements Source. Static has no goroutine; Close closes Updates.
func (s *Static) Close() error {
	s.feed.close()
	return nil
}

// ParseBackends parses a static backend list, one entry per backend:
//
//	[tcp://]HOST:PORT[#OPTIONS]     Hypertube over TCP (the default scheme)
//	ws://HOST:PORT[/ws][#OPTIONS]   WebSocket on /ws (the only path GG documents)
//	tls://HOST:PORT[#OPTIONS]       Hypertube over TCP inside TLS
//	wss://HOST:PORT[/ws][#OPTIONS]  WebSocket over TLS
//
// OPTIONS is a comma-separated list of key=value:
//
//	name=gw1            member name; default HOST:PORT
//	weight=2            1 to MaxWeight; default 1
//	zone=eu-1           locality label
//	modules=a@1+b@2     modules served, '+'-separated; default: unknown, which
//	                    means "serves everything" (see Member.Serves)
//	http=HOST:PORT      GET /status listener; ":PORT" means the entry's host
//
// For example "tcp://127.0.0.1:8990#name=gw1,weight=2". Entries with the
// same name= describe one member reachable several ways, for example
// "tcp://10.0.0.5:8990#name=gw1" and "ws://10.0.0.5:8888/ws#name=gw1"; they
// must not disagree on an address, an option or TLS. Unnamed entries that end up
// with the same name are an error. Members are gateways, Ready, without an
// instance id.
func ParseBackends(entries []string) ([]Member, error) {
	var out []Member
	index := map[string]int{}  // name → position in out
	named := map[string]bool{} // names that came from name=
	for _, e := range entries {
		spec, err := parseBackend(e)
		if err != nil {
			return nil, err
		}
		m := spec.member(spec.host)
		i, dup := index[m.Name]
		switch {
		case !dup:
			index[m.Name] = len(out)
			named[m.Name] = spec.name != ""
			out = append(out, m)
		case spec.name != "" && named[m.Name]:
			merged, err := mergeMember(out[i], m)
			if err != nil {
				return nil, fmt.Errorf("discovery: backend %q: %w", e, err)
			}
			out[i] = merged
		default:
			return nil, fmt.Errorf("discovery: backend %q: duplicate member name %q", e, m.Name)
		}
	}
	return out, nil
}

// backendSpec is one parsed backend entry, before a host is chosen (DNS
// expands one spec into a member per resolved address).
type backendSpec struct {
	scheme     string // "tcp", "ws", "tls" or "wss"
	host, port string
	name       string
	weight     int
	zone       string
	modules    []string
	http       string // as given: "" , ":PORT" or "HOST:PORT"
}

func parseBackend(entry string) (backendSpec, error) {
	var spec backendSpec
	s := entry
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return spec, fmt.Errorf("discovery: backend %q: %w", entry, err)
	}
	fail := func(format string, args ...any) (backendSpec, error) {
		return backendSpec{}, fmt.Errorf("discovery: backend %q: "+format, append([]any{entry}, args...)...)
	}
	spec.scheme = u.Scheme
	switch u.Scheme {
	case "tcp", "tls":
		if u.Path != "" {
			return fail("%s takes no path", u.Scheme)
		}
	case "ws", "wss":
		if u.Path != "" && u.Path != "/ws" {
			return fail("WebSocket path must be /ws, not %q", u.Path)
		}
	default:
		return fail("scheme %q: want tcp, ws, tls or wss", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Opaque != "" {
		return fail("only scheme://host:port[/ws][#options] is allowed")
	}
	spec.host, spec.port = u.Hostname(), u.Port()
	if spec.host == "" {
		return fail("missing host")
	}
	if p, err := strconv.Atoi(spec.port); err != nil || p < 1 || p > 65535 {
		return fail("port %q: want 1 to 65535", spec.port)
	}
	if u.Fragment == "" {
		return spec, nil
	}
	for opt := range strings.SplitSeq(u.Fragment, ",") {
		k, v, ok := strings.Cut(opt, "=")
		if !ok || v == "" {
			return fail("option %q: want key=value", opt)
		}
		switch k {
		case "name":
			spec.name = v
		case "weight":
			w, err := strconv.Atoi(v)
			if err != nil || w < 1 || w > MaxWeight {
				return fail("weight %q: want 1 to %d", v, MaxWeight)
			}
			spec.weight = w
		case "zone":
			spec.zone = v
		case "modules":
			spec.modules = strings.Split(v, "+")
			if slices.Contains(spec.modules, "") {
				return fail("modules %q: empty module name", v)
			}
		case "http":
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fail("http %q: want HOST:PORT or :PORT", v)
			}
			spec.http = v
		default:
			return fail("unknown option %q (want name, weight, zone, modules, http)", k)
		}
	}
	return spec, nil
}

// member builds the member that spec describes at host.
func (spec backendSpec) member(host string) Member {
	addr := net.JoinHostPort(host, spec.port)
	m := Member{
		Name:    spec.name,
		Role:    RoleGateway,
		Weight:  spec.weight,
		Zone:    spec.zone,
		Modules: slices.Clone(spec.modules),
	}
	if m.Name == "" {
		m.Name = addr
	}
	if spec.scheme == "ws" || spec.scheme == "wss" {
		m.Addrs.WS = addr
	} else {
		m.Addrs.TCP = addr
	}
	m.Addrs.TLS = spec.scheme == "tls" || spec.scheme == "wss"
	if spec.http != "" {
		h, p, _ := net.SplitHostPort(spec.http)
		if h == "" {
			h = host
		}
		m.Addrs.HTTP = net.JoinHostPort(h, p)
	}
	return m.normalized()
}

// mergeMember joins two descriptions of one named member. Weight 1 and
// empty fields count as "not given".
func mergeMember(a, b Member) (Member, error) {
	pick := func(field, x, y string) (string, error) {
		if x != "" && y != "" && x != y {
			return "", fmt.Errorf("%s: %q and %q for member %q", field, x, y, a.Name)
		}
		if x == "" {
			return y, nil
		}
		return x, nil
	}
	var err error
	var errs []error
	a.Addrs.TCP, err = pick("tcp address", a.Addrs.TCP, b.Addrs.TCP)
	errs = append(errs, err)
	a.Addrs.WS, err = pick("ws address", a.Addrs.WS, b.Addrs.WS)
	errs = append(errs, err)
	a.Addrs.HTTP, err = pick("http address", a.Addrs.HTTP, b.Addrs.HTTP)
	errs = append(errs, err)
	a.Zone, err = pick("zone", a.Zone, b.Zone)
	errs = append(errs, err)
	if a.Addrs.TLS != b.Addrs.TLS {
		errs = append(errs, fmt.Errorf("tls: one entry of member %q speaks TLS and another does not", a.Name))
	}
	switch {
	case a.Weight == DefaultWeight:
		a.Weight = b.Weight
	case b.Weight != DefaultWeight && a.Weight != b.Weight:
		errs = append(errs, fmt.Errorf("weight: %d and %d for member %q", a.Weight, b.Weight, a.Name))
	}
	switch {
	case len(a.Modules) == 0:
		a.Modules = b.Modules
	case len(b.Modules) > 0 && !slices.Equal(a.Modules, b.Modules):
		errs = append(errs, fmt.Errorf("modules: %v and %v for member %q", a.Modules, b.Modules, a.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return Member{}, err
	}
	return a, nil
}
