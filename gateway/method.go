package gateway

import (
	"context"
	"fmt"
	"reflect"

	"github.com/graftlb/graftlb/protocol"
)

var (
	ctxType      = reflect.TypeFor[context.Context]()
	errorType    = reflect.TypeFor[error]()
	callbackType = reflect.TypeFor[Callback]()
)

// method is a registered function or instance method with its signature
// analysed once, at registration.
type method struct {
	name     string // module@version.Type.Method, for messages
	short    string // Method
	fn       reflect.Value
	recv     bool // fn is a method expression: its first argument is the object
	ctx      bool // takes a context.Context before the call's arguments
	params   []param
	hasValue bool // returns a result value
	hasErr   bool // returns an error (last)

	faultExempt bool // FaultExempt
	stateless   bool // Stateless: served without a session
}

type param struct {
	t        reflect.Type
	callback bool
}

// bindMethod checks fn's signature and records how to call it. recv says
// that fn's first parameter is a receiver (an instance method).
func bindMethod(prefix, short string, fn reflect.Value, recv bool) (*method, error) {
	ft := fn.Type()
	name := prefix + "." + short
	m := &method{name: name, short: short, fn: fn, recv: recv}
	if ft.IsVariadic() {
		return nil, fmt.Errorf("%s: variadic functions are not supported", name)
	}
	in := 0
	if recv {
		in = 1
	}
	if in < ft.NumIn() && ft.In(in) == ctxType {
		m.ctx = true
		in++
	}
	for ; in < ft.NumIn(); in++ {
		t := ft.In(in)
		if t == callbackType {
			m.params = append(m.params, param{t: t, callback: true})
			continue
		}
		if err := decodable(t); err != nil {
			return nil, fmt.Errorf("%s: parameter %d (%s): %w", name, len(m.params)+1, t, err)
		}
		m.params = append(m.params, param{t: t})
	}
	switch ft.NumOut() {
	case 0:
	case 1:
		if ft.Out(0) == errorType {
			m.hasErr = true
		} else {
			m.hasValue = true
		}
	case 2:
		if ft.Out(1) != errorType {
			return nil, fmt.Errorf("%s: a second result must be error, is %s", name, ft.Out(1))
		}
		m.hasValue, m.hasErr = true, true
	default:
		return nil, fmt.Errorf("%s: at most two results (value, error), has %d", name, ft.NumOut())
	}
	return m, nil
}

// decodable refuses parameter types that no CBOR value can decode into.
func decodable(t reflect.Type) error {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return fmt.Errorf("%s parameters cannot be decoded from CBOR", t.Kind())
	case reflect.Interface:
		if t.NumMethod() > 0 {
			if t == ctxType {
				return fmt.Errorf("context.Context must be the first parameter")
			}
			return fmt.Errorf("non-empty interface parameters cannot be decoded from CBOR")
		}
	}
	return nil
}

// emptyArgs is what an empty body stands for: no arguments.
var emptyArgs = []byte{0x80}

// decodeArgs decodes the CBOR array of arguments into the parameters'
// types. Callback parameters are bound with bind. Errors are BAD_ARGS and
// say which argument failed.
func (m *method) decodeArgs(body []byte, bind func(protocol.CallbackRef) Callback) ([]reflect.Value, error) {
	if len(body) == 0 {
		body = emptyArgs
	}
	var raw []protocol.RawValue
	if err := protocol.Unmarshal(body, &raw); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadArgs, "%s: arguments must be one CBOR array: %v", m.name, err)
	}
	if len(raw) != len(m.params) {
		return nil, protocol.Errorf(protocol.CodeBadArgs, "%s takes %d argument(s), got %d", m.name, len(m.params), len(raw))
	}
	vals := make([]reflect.Value, len(raw))
	for i, p := range m.params {
		if p.callback {
			var ref protocol.CallbackRef
			if err := protocol.Unmarshal(raw[i], &ref); err != nil {
				return nil, protocol.Errorf(protocol.CodeBadArgs,
					"%s: argument %d (callback): want a callback reference (CBOR tag %d): %v", m.name, i+1, protocol.CallbackTag, err)
			}
			vals[i] = reflect.ValueOf(bind(ref))
			continue
		}
		v := reflect.New(p.t)
		if err := protocol.Unmarshal(raw[i], v.Interface()); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadArgs, "%s: argument %d (%s): %v", m.name, i+1, p.t, err)
		}
		vals[i] = v.Elem()
	}
	return vals, nil
}

// invoke calls the method with decoded arguments on recv (the object, for
// instance methods) and splits its results.
func (m *method) invoke(ctx context.Context, recv reflect.Value, args []reflect.Value) (any, error) {
	in := make([]reflect.Value, 0, len(args)+2)
	if m.recv {
		in = append(in, recv)
	}
	if m.ctx {
		in = append(in, reflect.ValueOf(&ctx).Elem())
	}
	in = append(in, args...)
	out := m.fn.Call(in)
	var res any
	if m.hasValue {
		res = out[0].Interface()
	}
	if m.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return res, e.Interface().(error)
		}
	}
	return res, nil
}
