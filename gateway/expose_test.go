package gateway_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// locked embeds sync.Mutex: Lock, Unlock and TryLock are in the method
// set of *locked, promoted from the mutex.
type locked struct {
	sync.Mutex
	labelled
	n int
}

// labelled is a second embedded field, with a method of its own.
type labelled struct{ label string }

func (l *labelled) Label() string { return l.label }

func (c *locked) Incr() int {
	c.Lock()
	defer c.Unlock()
	c.n++
	return c.n
}

func (c *locked) Reset() {
	c.Lock()
	defer c.Unlock()
	c.n = 0
}

// shadowing declares its own Label over the one labelled promotes.
type shadowing struct{ labelled }

func (s *shadowing) Label() string { return "own" }

// partlyBad has one method no call can reach: a channel parameter.
type partlyBad struct{}

func (*partlyBad) Good() int      { return 1 }
func (*partlyBad) Bad(chan int)   {}
func (*partlyBad) Worse(...int)   {}
func (*partlyBad) AlsoGood() bool { return true }

func newLocked() *locked { return &locked{labelled: labelled{label: "L"}} }

// exposeModule registers the same types with different options.
func exposeModule() *gateway.Module {
	return gateway.NewModule("expose", "1").
		Type("Default", newLocked).
		Type("Only", newLocked, gateway.Methods("Incr", "Label")).
		Type("Without", newLocked, gateway.Exclude("Reset")).
		Type("Shadow", func() *shadowing { return &shadowing{} }).
		Type("PartlyBad", func() *partlyBad { return &partlyBad{} })
}

// TestPromotedMethodsAreNotRemote: an object type that embeds sync.Mutex
// does not make Lock, Unlock or TryLock remotely callable (a remote Lock
// would freeze the object); the call gets NOT_FOUND and the object keeps
// working. Methods can ask for a promoted method; a declared method that
// shadows a promoted one is the type's own.
func TestPromotedMethodsAreNotRemote(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, func(c *gatewayConfig) { c.Modules = append(c.Modules, exposeModule()) })
		p := e.dial(t, binding)
		obj := newObject(t, p, "expose@1.Default")
		for _, m := range []string{"Lock", "Unlock", "TryLock", "Label"} {
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "expose@1.Default." + m, Object: obj, Deadline: 5000}),
				protocol.CodeNotFound)
		}
		for want := 1; want <= 2; want++ {
			var n int
			// A deadline: if Lock had run remotely, Incr would block.
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.Default.Incr", Object: obj, Deadline: 5000}), &n)
			if n != want {
				t.Fatalf("Incr = %d, want %d", n, want)
			}
		}

		only := newObject(t, p, "expose@1.Only")
		var label string
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.Only.Label", Object: only}), &label)
		if label != "L" {
			t.Fatalf("promoted Label asked for by Methods = %q", label)
		}
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.Only.Incr", Object: only}), nil)
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "expose@1.Only.Reset", Object: only}), protocol.CodeNotFound)

		without := newObject(t, p, "expose@1.Without")
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "expose@1.Without.Reset", Object: without}), protocol.CodeNotFound)
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.Without.Incr", Object: without}), nil)

		shadow := newObject(t, p, "expose@1.Shadow")
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.Shadow.Label", Object: shadow}), &label)
		if label != "own" {
			t.Fatalf("shadowing Label = %q, want the type's own", label)
		}
	})
}

// TestUnsupportedMethodSkipped: a method whose signature no call can
// reach is skipped with an error naming it, and the type's other methods
// are served; New logs each skipped method.
func TestUnsupportedMethodSkipped(t *testing.T) {
	m := exposeModule()
	if err := m.Err(); err != nil {
		t.Fatalf("Err = %v: a bad method must not refuse the whole type", err)
	}
	skipped := m.Skipped()
	if len(skipped) != 2 {
		t.Fatalf("Skipped = %v, want Bad and Worse", skipped)
	}
	for i, want := range []string{"expose@1.PartlyBad.Bad: parameter 1 (chan int)", "expose@1.PartlyBad.Worse: variadic"} {
		if s := skipped[i].Error(); !strings.Contains(s, want) || !strings.Contains(s, "skipped") {
			t.Fatalf("Skipped[%d] = %q, want it to name %q and say it was skipped", i, s, want)
		}
	}
	e := start(t, func(c *gatewayConfig) { c.Modules = append(c.Modules, m) })
	p := e.dial(t, "tcp")
	obj := newObject(t, p, "expose@1.PartlyBad")
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.PartlyBad.Good", Object: obj}), nil)
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "expose@1.PartlyBad.AlsoGood", Object: obj}), nil)
	gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "expose@1.PartlyBad.Bad", Object: obj}), protocol.CodeNotFound)
	warned := 0
	for _, l := range e.logs.lines(t) {
		if l["level"] == "warn" && strings.Contains(l["error"].(string), "expose@1.PartlyBad.") {
			warned++
		}
	}
	if warned != 2 {
		t.Fatalf("%d warnings about skipped methods in the log, want 2", warned)
	}
}

// TestMethodOptionErrors: options that cannot apply are registration
// errors, not silently ignored.
func TestMethodOptionErrors(t *testing.T) {
	ctor := func() *partlyBad { return &partlyBad{} }
	tests := []struct {
		name    string
		m       *gateway.Module
		wantErr string
	}{
		{"Methods names no method", gateway.NewModule("m", "1").Type("T", ctor, gateway.Methods("Good", "Nope")), `no method "Nope"`},
		{"Exclude names no method", gateway.NewModule("m", "1").Type("T", ctor, gateway.Exclude("Nope")), `no method "Nope"`},
		{"Methods asks for a bad method", gateway.NewModule("m", "1").Type("T", ctor, gateway.Methods("Bad")), "parameter 1 (chan int)"},
		{"Methods on Func", gateway.NewModule("m", "1").Func("T", "F", func() {}, gateway.Methods("F")), "Methods and Exclude apply to Type"},
		{"Stateless on Type", gateway.NewModule("m", "1").Type("T", ctor, gateway.Stateless()), "Stateless applies to Func"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Err(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// newObject calls $new of module@version.Type and returns the object id.
func newObject(t *testing.T, p *gatewaytest.Peer, typ string) uint64 {
	t.Helper()
	f := p.Call(gatewaytest.Call{Target: typ + "." + protocol.MethodNew})
	gatewaytest.Result(t, f, nil)
	if f.Object == 0 {
		t.Fatalf("$new of %s returned object id 0", typ)
	}
	return f.Object
}
