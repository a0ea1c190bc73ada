package client

import (
	"context"
	"errors"

	"github.com/graftlb/graftlb/protocol"
)

// Object is a handle on an instance that lives on the session's gateway.
type Object struct {
	s      *Session
	module string
	typ    string
	id     uint64
}

// ID returns the object id.
func (o *Object) ID() uint64 { return o.id }

// Session returns the session that owns the object.
func (o *Object) Session() *Session { return o.s }

// Call calls an instance method.
func (o *Object) Call(ctx context.Context, method string, args ...any) (*Result, error) {
	return o.s.Do(ctx, Request{Target: protocol.Target{Module: o.module, Type: o.typ, Method: method}, Object: o.id, Args: args})
}

// Release frees the instance on its gateway and removes the object's event
// handlers (once the gateway answered, or said it has no such object).
func (o *Object) Release(ctx context.Context) error {
	_, err := o.Call(ctx, protocol.MethodRelease)
	if err == nil || errors.Is(err, protocol.ErrNotFound) {
		o.s.forgetObject(o.id)
	}
	return err
}

// Result is a call's result.
type Result struct {
	// Object is the header's object id: the new instance for a constructor.
	Object uint64
	// Body is the result as one CBOR data item; it belongs to the caller.
	Body []byte
}

// Decode decodes the result into v.
func (r *Result) Decode(v any) error { return protocol.Unmarshal(r.Body, v) }

// Value decodes the result into a generic value (maps become
// map[string]any).
func (r *Result) Value() (any, error) {
	var v any
	err := r.Decode(&v)
	return v, err
}
