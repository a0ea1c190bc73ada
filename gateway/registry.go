package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/graftlb/graftlb/protocol"
)

// Module is a named, versioned set of types that a gateway hosts: static
// functions registered with Func, and stateful types registered with Type
// (a constructor whose result's methods become instance methods).
//
// Registration inspects each function once with reflection and records how
// to decode its arguments, so that calls do no signature analysis. Mistakes
// (a function with an unsupported signature given to Func, a name
// registered twice, an option that does not apply) do not panic: the first
// one is kept and returned by Err, and New refuses a module that has one.
// An instance method that no call could reach (see Type) is skipped
// instead, and reported by Skipped. The methods return m so that
// registrations chain:
//
//	m := gateway.NewModule("orders", "1").
//		Func("Orders", "GetOrder", getOrder, gateway.Stateless()).
//		Type("Cart", newCart, gateway.Exclude("Debug"))
//
// A Module is immutable once passed to New; it may be shared by gateways.
type Module struct {
	name    string // module@version
	types   map[string]*typeDesc
	err     error
	skipped []error
}

// typeDesc is one type name of a module: its static functions, and its
// constructor and instance methods when it is stateful.
type typeDesc struct {
	module   string
	name     string
	static   map[string]*method
	ctor     *method            // nil for types with only static functions
	instance map[string]*method // methods of the constructed value
	// restore builds an object from its snapshot (Restore); the zero Value
	// when the type's objects cannot move.
	restore reflect.Value
}

// movable reports whether the type's objects can move to another gateway.
func (t *typeDesc) movable() bool { return t.restore.IsValid() }

// MethodOption changes how registered methods are served (FaultExempt,
// Stateless) or which methods of a type are registered (Methods,
// Exclude). An option that does not apply where it is given (Stateless on
// Type, Methods on Func) is a registration error.
type MethodOption func(*regOptions)

// regOptions collects the options of one Func or Type call.
type regOptions struct {
	faultExempt bool
	stateless   bool
	include     []string // nil: every method the type declares
	exclude     []string
	restore     any // Restore's function, nil without it
}

func collect(opts []MethodOption) regOptions {
	var o regOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// FaultExempt exempts a method from the faults a gateway injects (see
// Faults): the chaos module's own controls use it so that a fail rate of 1
// can still be turned off.
func FaultExempt() MethodOption { return func(o *regOptions) { o.faultExempt = true } }

// Stateless declares a static function stateless (Func only): it touches
// no session state, so the gateway serves it without a session. A CALL of
// it needs neither the STATELESS flag nor a session the gateway holds:
// without the flag, and with a zero or unknown session id, it is served
// like a call that carries STATELESS, never creates a session, and is
// served while the gateway drains (protocol/SPEC.md section 7). Callers
// that send STATELESS let a proxy spread the calls over every gateway;
// without it a proxy sends them to the session's owner.
func Stateless() MethodOption { return func(o *regOptions) { o.stateless = true } }

// Methods limits a Type to the named methods of its constructed value:
// only they are remote. It may name a method promoted from an embedded
// field, which is how such a method is made remote (see Type). Naming a
// method the value does not have, or one with an unsupported signature, is
// a registration error. Several Methods options add up.
func Methods(names ...string) MethodOption {
	return func(o *regOptions) { o.include = append(o.include, names...) }
}

// Exclude keeps the named methods of a Type's value from being remote.
// Naming a method the value does not have is a registration error.
func Exclude(names ...string) MethodOption {
	return func(o *regOptions) { o.exclude = append(o.exclude, names...) }
}

// Restore makes a Type's objects movable (Type only): when a gateway drains,
// the sessions holding them move to another gateway of the pool instead of
// being lost (protocol/SPEC.md section 7, Handoff). fn rebuilds an object
// from the bytes its Snapshot method returned, on the gateway that takes the
// session:
//
//	func(state []byte) (*T, error)
//
// where *T is the constructor's result, which must implement Snapshotter.
// Its Snapshot method is then the handoff's, not a remote method. A wrong
// signature is a registration error. A type without Restore keeps its
// objects where they were created: a drain that cannot move a session loses
// it when the gateway exits.
func Restore(fn any) MethodOption { return func(o *regOptions) { o.restore = fn } }

// NewModule returns an empty module named name@version, e.g. "orders@1".
func NewModule(name, version string) *Module {
	m := &Module{name: name + "@" + version, types: map[string]*typeDesc{}}
	switch {
	case name == "" || version == "":
		m.fail(errors.New("module name and version must not be empty"))
	case strings.ContainsAny(name, "@.$") || strings.Contains(version, "@"):
		m.fail(errors.New("module name must not contain '@', '.' or '$', nor the version '@'"))
	case len(m.name) > protocol.MaxStringLen:
		m.fail(fmt.Errorf("module@version longer than %d bytes", protocol.MaxStringLen))
	}
	return m
}

// Name returns the module's module@version.
func (m *Module) Name() string { return m.name }

// Err returns the first registration error, or nil.
func (m *Module) Err() error { return m.err }

// Skipped returns an error for each instance method that Type skipped
// because no call could reach it (an unsupported signature, a name over
// 255 bytes), naming the method and the reason, in registration order.
// New logs them at warn level; a test can assert that there are none.
func (m *Module) Skipped() []error { return append([]error(nil), m.skipped...) }

func (m *Module) fail(err error) {
	if m.err == nil {
		m.err = fmt.Errorf("gateway: module %s: %w", m.name, err)
	}
}

// Func registers fn as the static method typeName.method. fn's signature is
//
//	func([ctx context.Context,] args...) ([result,] [error])
//
// Each argument is decoded from the call's CBOR array into its parameter's
// type; a parameter of type Callback receives a callback reference. The
// result is encoded as the RESULT body; an error becomes an ERROR frame
// (see AppError for how errors map to codes). An unsupported signature is
// a registration error (Err). Options: FaultExempt, Stateless.
func (m *Module) Func(typeName, method string, fn any, opts ...MethodOption) *Module {
	o := collect(opts)
	switch {
	case o.include != nil || o.exclude != nil:
		m.fail(fmt.Errorf("%s.%s: Methods and Exclude apply to Type, not Func", typeName, method))
		return m
	case o.restore != nil:
		m.fail(fmt.Errorf("%s.%s: Restore applies to Type, not Func: functions have no objects to move", typeName, method))
		return m
	}
	t := m.typeNamed(typeName)
	if t == nil || !m.checkMethodName(typeName, method) {
		return m
	}
	if _, dup := t.static[method]; dup {
		m.fail(fmt.Errorf("%s.%s registered twice", typeName, method))
		return m
	}
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		m.fail(fmt.Errorf("%s.%s: want a function, got %T", typeName, method, fn))
		return m
	}
	md, err := bindMethod(m.name+"."+typeName, method, v, false)
	if err != nil {
		m.fail(err)
		return m
	}
	md.faultExempt, md.stateless = o.faultExempt, o.stateless
	t.static[method] = md
	return m
}

// Type registers a stateful type. ctor is its constructor, called by the
// reserved method $new:
//
//	func([ctx context.Context,] args...) (*T[, error])
//
// The exported methods that *T or T declare become instance methods,
// callable on the object id that $new returned, with the same signature
// rules as Func (without the receiver). Methods promoted from embedded
// fields are not remote: embedding sync.Mutex must not let a client call
// Lock. Methods (which may name promoted methods) and Exclude choose
// otherwise. A declared method whose signature no call can reach is
// skipped, reported by Skipped and logged by New, unless Methods names it,
// which makes it a registration error.
//
// Whether a method is declared or promoted is told from the compiled code
// (the compiler marks the wrappers of promoted methods as generated); a
// method that embeds and shadows a promoted one counts as declared.
// The option FaultExempt applies to the constructor and every instance
// method. Instance methods of one object may run concurrently: guard the
// object's state.
func (m *Module) Type(typeName string, ctor any, opts ...MethodOption) *Module {
	o := collect(opts)
	if o.stateless {
		m.fail(fmt.Errorf("%s: Stateless applies to Func: objects belong to a session", typeName))
		return m
	}
	t := m.typeNamed(typeName)
	if t == nil {
		return m
	}
	if t.ctor != nil {
		m.fail(fmt.Errorf("type %s registered twice", typeName))
		return m
	}
	v := reflect.ValueOf(ctor)
	if v.Kind() != reflect.Func || v.IsNil() {
		m.fail(fmt.Errorf("%s: constructor must be a function, got %T", typeName, ctor))
		return m
	}
	ct, err := bindMethod(m.name+"."+typeName, protocol.MethodNew, v, false)
	if err != nil {
		m.fail(err)
		return m
	}
	inst := v.Type().Out(0)
	if !ct.hasValue || inst.Kind() != reflect.Pointer {
		m.fail(fmt.Errorf("%s: constructor must return a pointer (and optionally an error), returns %s", typeName, v.Type()))
		return m
	}
	ct.faultExempt = o.faultExempt
	var restore reflect.Value
	if o.restore != nil {
		if restore, err = bindRestore(inst, o.restore); err != nil {
			m.fail(fmt.Errorf("%s: %w", typeName, err))
			return m
		}
		if !slices.Contains(o.include, snapshotMethod) && !slices.Contains(o.exclude, snapshotMethod) {
			o.exclude = append(o.exclude, snapshotMethod)
		}
	}
	names, err := remoteMethods(inst, o)
	if err != nil {
		m.fail(fmt.Errorf("%s: %w", typeName, err))
		return m
	}
	asked := map[string]bool{}
	for _, n := range o.include {
		asked[n] = true
	}
	methods := map[string]*method{}
	for _, name := range names {
		rm, _ := inst.MethodByName(name)
		md, err := bindMethod(m.name+"."+typeName, name, rm.Func, true)
		if err == nil && len(name) > protocol.MaxStringLen {
			err = fmt.Errorf("%s.%s: method name longer than %d bytes", typeName, name, protocol.MaxStringLen)
		}
		switch {
		case err != nil && asked[name]:
			m.fail(err)
			return m
		case err != nil:
			m.skipped = append(m.skipped, fmt.Errorf("gateway: %w (method skipped: not callable remotely)", err))
			continue
		}
		md.faultExempt = o.faultExempt
		methods[name] = md
	}
	t.ctor, t.instance, t.restore = ct, methods, restore
	return m
}

func (m *Module) typeNamed(name string) *typeDesc {
	if name == "" || len(name) > protocol.MaxStringLen || strings.ContainsRune(name, '.') {
		m.fail(fmt.Errorf("bad type name %q", name))
		return nil
	}
	t := m.types[name]
	if t == nil {
		t = &typeDesc{module: m.name, name: name, static: map[string]*method{}}
		m.types[name] = t
	}
	return t
}

func (m *Module) checkMethodName(typeName, name string) bool {
	switch {
	case name == "" || len(name) > protocol.MaxStringLen || strings.ContainsRune(name, '.'):
		m.fail(fmt.Errorf("%s: bad method name %q", typeName, name))
	case strings.HasPrefix(name, "$"):
		m.fail(fmt.Errorf("%s.%s: method names beginning with '$' are reserved", typeName, name))
	default:
		return true
	}
	return false
}

// registry indexes the modules of one gateway. It is immutable after New,
// so lookups take no lock.
type registry struct {
	modules map[string]*Module
}

func newRegistry(mods []*Module) (*registry, error) {
	r := &registry{modules: make(map[string]*Module, len(mods))}
	for _, m := range mods {
		if m == nil {
			return nil, errors.New("gateway: nil module")
		}
		if m.err != nil {
			return nil, m.err
		}
		if _, dup := r.modules[m.name]; dup {
			return nil, fmt.Errorf("gateway: module %s registered twice", m.name)
		}
		r.modules[m.name] = m
	}
	return r, nil
}

// lookupType finds module@version and type; the []byte→string conversions
// in map lookups do not allocate.
func (r *registry) lookupType(module, typ []byte) (*typeDesc, *protocol.Error) {
	m := r.modules[string(module)]
	if m == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no module %q", module)
	}
	t := m.types[string(typ)]
	if t == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "module %s has no type %q", m.name, typ)
	}
	return t, nil
}
