package client

import (
	"context"
	"fmt"
	"reflect"
)

// The typed layer: the same calls as Object.Call, Session.Call and
// Session.CallStateless, with the result decoded into a T (see the README's
// Go type ↔ CBOR table). A method that returns nothing answers CBOR null,
// which leaves T at its zero value; use struct{} or any for those. A result
// that does not decode into T is an error wrapping the decoder's, returned
// with T's zero value: the call itself ran.

// Call calls the instance method method of obj and decodes its result into
// a T:
//
//	added, err := client.Call[cart.Added](ctx, obj, "AddItem", "apple", 120)
func Call[T any](ctx context.Context, obj *Object, method string, args ...any) (T, error) {
	r, err := obj.Call(ctx, method, args...)
	return decodeAs[T](r, err, obj.module+"."+obj.typ+"."+method)
}

// CallStatic calls a static method statefully (in the session, on its
// owner), target being "module@version.Type.Method", and decodes its result
// into a T.
func CallStatic[T any](ctx context.Context, s *Session, target string, args ...any) (T, error) {
	r, err := s.Call(ctx, target, args...)
	return decodeAs[T](r, err, target)
}

// CallStateless calls a static method that any gateway may serve and
// decodes its result into a T:
//
//	o, err := client.CallStateless[orders.Order](ctx, s, "orders@1.Orders.GetOrder", "o-1")
func CallStateless[T any](ctx context.Context, s *Session, target string, args ...any) (T, error) {
	r, err := s.CallStateless(ctx, target, args...)
	return decodeAs[T](r, err, target)
}

func decodeAs[T any](r *Result, err error, target string) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if err := r.Decode(&v); err != nil {
		var zero T
		return zero, fmt.Errorf("client: result of %s does not decode into %v: %w", target, reflect.TypeFor[T](), err)
	}
	return v, nil
}
