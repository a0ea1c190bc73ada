package gateway

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/graftlb/graftlb/protocol"
)

// Module is a named, versioned set of types that a gateway hosts: static
// functions registered with Func, and stateful types registered with Type
// (a constructor whose result's exported methods become instance methods).
//
// Registration inspects each function once with reflection and records how
// to decode its arguments, so that calls do no signature analysis. Mistakes
// (a function with an unsupported signature, a name registered twice) do
// not panic: the first one is kept and returned by Err, and New refuses a
// module that has one. The methods return m so that registrations chain:
//
//	m := gateway.NewModule("orders", "1").
//		Func("Orders", "GetOrder", getOrder).
//		Type("Cart", newCart)
//
// A Module is immutable once passed to New; it may be shared by gateways.
type Module struct {
	name  string // module@version
	types map[string]*typeDesc
	err   error
}

// typeDesc is one type name of a module: its static functions, and its
// constructor and instance methods when it is stateful.
type typeDesc struct {
	module   string
	name     string
	static   map[string]*method
	ctor     *method            // nil for types with only static functions
	instance map[string]*method // methods of the constructed value
}

// MethodOption changes how a registered method is served.
type MethodOption func(*method)

// FaultExempt exempts a method from the faults a gateway injects (see
// Faults): the chaos module's own controls use it so that a fail rate of 1
// can still be turned off.
func FaultExempt() MethodOption { return func(m *method) { m.faultExempt = true } }

// NewModule returns an empty module named name@version, e.g. "orders@1".
func NewModule(name, version string) *Module {
	m := &Module{name: name + "@" + version, types: map[string]*typeDesc{}}
	switch {
	case name == "" || version == "":
		m.fail(errors.New("module name and version must not be empty"))
	case strings.ContainsAny(name, "@.") || strings.Contains(version, "@"):
		m.fail(errors.New("module name must not contain '@' or '.', nor the version '@'"))
	case len(m.name) > protocol.MaxStringLen:
		m.fail(fmt.Errorf("module@version longer than %d bytes", protocol.MaxStringLen))
	}
	return m
}

// Name returns the module's module@version.
func (m *Module) Name() string { return m.name }

// Err returns the first registration error, or nil.
func (m *Module) Err() error { return m.err }

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
// (see AppError for how errors map to codes).
func (m *Module) Func(typeName, method string, fn any, opts ...MethodOption) *Module {
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
	md.apply(opts)
	t.static[method] = md
	return m
}

// Type registers a stateful type. ctor is its constructor, called by the
// reserved method $new:
//
//	func([ctx context.Context,] args...) (*T[, error])
//
// Every exported method of *T becomes an instance method, callable on the
// object id that $new returned, with the same signature rules as Func
// (without the receiver). Options apply to the constructor and every
// instance method. Instance methods of one object may run concurrently:
// guard the object's state.
func (m *Module) Type(typeName string, ctor any, opts ...MethodOption) *Module {
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
	ct.apply(opts)
	methods := map[string]*method{}
	for i := 0; i < inst.NumMethod(); i++ {
		rm := inst.Method(i)
		if len(rm.Name) > protocol.MaxStringLen {
			m.fail(fmt.Errorf("%s.%s: method name too long", typeName, rm.Name))
			return m
		}
		md, err := bindMethod(m.name+"."+typeName, rm.Name, rm.Func, true)
		if err != nil {
			m.fail(err)
			return m
		}
		md.apply(opts)
		methods[rm.Name] = md
	}
	t.ctor, t.instance = ct, methods
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
