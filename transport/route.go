package transport

import (
	"fmt"
	"strings"

	"github.com/graftlb/graftlb/protocol"
)

// Mode is how a call travels.
type Mode uint8

// The modes a route names.
const (
	// Direct is the proxy's own gateway connections (the default).
	Direct Mode = iota
	// Queue is NATS request/reply over a queue group: one gateway runs it.
	Queue
	// Fanout is NATS publish to every subscribed gateway.
	Fanout
	// Durable is a JetStream work queue: stored, then run by one gateway.
	Durable
)

var modeNames = [...]string{Direct: "direct", Queue: "nats:queue", Fanout: "nats:fanout", Durable: "nats:durable"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses a mode's name as a route names it.
func ParseMode(s string) (Mode, error) {
	for m, n := range modeNames {
		if n == s {
			return Mode(m), nil
		}
	}
	return Direct, fmt.Errorf("unknown transport %q (want direct, nats:queue, nats:fanout or nats:durable)", s)
}

// Routes is the proxy's route table: which modules, or single methods,
// travel by which mode. The most specific route wins (module.Type.Method
// over module); unrouted calls are Direct. A Routes is immutable after
// ParseRoutes, and Lookup allocates nothing.
type Routes struct {
	modules map[string]*moduleRoutes
	list    []string // as given, for the effective configuration
}

type moduleRoutes struct {
	mode    Mode
	set     bool                       // mode was given for the whole module
	methods map[string]map[string]Mode // type → method → mode
}

// ParseRoutes parses routes of the form MODULE[.Type.Method]=MODE, MODULE
// being module@version. It returns nil (no routes) for none. A route named
// twice is an error.
func ParseRoutes(specs []string) (*Routes, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	r := &Routes{modules: map[string]*moduleRoutes{}}
	for _, spec := range specs {
		target, mode, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("route %q: want MODULE[.Type.Method]=MODE", spec)
		}
		m, err := ParseMode(strings.TrimSpace(mode))
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", spec, err)
		}
		target = strings.TrimSpace(target)
		module, rest, whole := target, "", true
		if i := strings.IndexByte(target, '.'); i >= 0 {
			module, rest, whole = target[:i], target[i+1:], false
		}
		if err := checkModule(module); err != nil {
			return nil, fmt.Errorf("route %q: %w", spec, err)
		}
		mr := r.modules[module]
		if mr == nil {
			mr = &moduleRoutes{methods: map[string]map[string]Mode{}}
			r.modules[module] = mr
		}
		if whole {
			if mr.set {
				return nil, fmt.Errorf("route %q: module %s is routed twice", spec, module)
			}
			mr.mode, mr.set = m, true
		} else {
			typ, method, ok := strings.Cut(rest, ".")
			if !ok || typ == "" || method == "" || strings.Contains(method, ".") {
				return nil, fmt.Errorf("route %q: want module@version.Type.Method", spec)
			}
			if mr.methods[typ] == nil {
				mr.methods[typ] = map[string]Mode{}
			}
			if _, dup := mr.methods[typ][method]; dup {
				return nil, fmt.Errorf("route %q: %s.%s.%s is routed twice", spec, module, typ, method)
			}
			mr.methods[typ][method] = m
		}
		r.list = append(r.list, target+"="+m.String())
	}
	return r, nil
}

func checkModule(module string) error {
	name, version, ok := strings.Cut(module, "@")
	if !ok || name == "" || version == "" {
		return fmt.Errorf("module %q: want name@version", module)
	}
	if strings.HasPrefix(module, "$") {
		return fmt.Errorf("module %q: the protocol's own modules are not routed", module)
	}
	return nil
}

// Lookup returns the mode of a call of module.typ.method; a nil Routes
// routes everything Direct.
func (r *Routes) Lookup(module, typ, method []byte) Mode {
	if r == nil {
		return Direct
	}
	mr := r.modules[string(module)]
	if mr == nil {
		return Direct
	}
	if ms := mr.methods[string(typ)]; ms != nil {
		if m, ok := ms[string(method)]; ok {
			return m
		}
	}
	return mr.mode
}

// Uses reports whether some route names a NATS mode.
func (r *Routes) Uses() bool {
	if r == nil {
		return false
	}
	for _, mr := range r.modules {
		if mr.mode != Direct {
			return true
		}
		for _, ms := range mr.methods {
			for _, m := range ms {
				if m != Direct {
					return true
				}
			}
		}
	}
	return false
}

// Strings returns the routes as given, for the effective configuration.
func (r *Routes) Strings() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.list...)
}

// FlagNotBefore marks a CALL whose object id field carries, instead of an
// object id, the earliest time the call may run, in Unix milliseconds
// (protocol/TRANSPORT.md). Only stateless static calls routed nats:durable
// may carry it; a receiver that does not know the flag sees a stateless
// call on an object and refuses it (BAD_ARGS), so the call never runs
// early by mistake.
const FlagNotBefore protocol.Flags = 1 << 7
