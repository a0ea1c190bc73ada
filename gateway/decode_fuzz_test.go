package gateway

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/graftlb/graftlb/protocol"
)

// Fuzz targets for what a gateway decodes from the network past the frame:
// a CALL's arguments into its method's parameter types, and the body of a
// handoff's Adopt call into objects.

type fuzzItem struct {
	SKU  string         `cbor:"sku"`
	Qty  int            `cbor:"qty"`
	Tags map[string]int `cbor:"tags"`
}

// fuzzCounter is a movable type: its state is a CBOR integer.
type fuzzCounter struct{ n int64 }

func (c *fuzzCounter) Add(d int64) int64         { c.n += d; return c.n }
func (c *fuzzCounter) Snapshot() ([]byte, error) { return protocol.Marshal(c.n) }
func restoreFuzzCounter(b []byte) (*fuzzCounter, error) {
	var n int64
	if err := protocol.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errors.New("negative count")
	}
	return &fuzzCounter{n: n}, nil
}

// fuzzRegistry hosts functions with parameters of many kinds, and the
// movable Counter.
func fuzzRegistry(tb testing.TB) (*registry, []*method) {
	tb.Helper()
	mod := NewModule("fuzz", "1").
		Func("F", "Strings", func(s string, l []string, b []byte) string { return s }).
		Func("F", "Numbers", func(i int64, u uint8, f float64, ok bool) {}).
		Func("F", "Struct", func(it fuzzItem, p *fuzzItem, m map[string][]int) {}).
		Func("F", "Callback", func(ctx context.Context, cb Callback, n int) error { return nil }).
		Func("F", "Any", func(v any, arr [2]uint16) {}).
		Func("F", "None", func() {}).
		Type("Counter", func() *fuzzCounter { return &fuzzCounter{} }, Restore(restoreFuzzCounter))
	r, err := newRegistry([]*Module{mod})
	if err != nil {
		tb.Fatal(err)
	}
	var ms []*method
	for _, name := range []string{"Strings", "Numbers", "Struct", "Callback", "Any", "None"} {
		ms = append(ms, mod.types["F"].static[name])
	}
	return r, ms
}

// FuzzDecodeArgs decodes a CALL body into each method's parameters: it
// must not panic, fail only with BAD_ARGS, and on success give one value of
// each parameter's type.
func FuzzDecodeArgs(f *testing.F) {
	_, methods := fuzzRegistry(f)
	for i, args := range [][]any{
		{"s", []string{"a", "b"}, []byte{1}},
		{int64(-5), uint8(200), 2.5, true},
		{fuzzItem{SKU: "A1", Qty: 2, Tags: map[string]int{"x": 1}}, nil, map[string][]int{"k": {1, 2}}},
		{protocol.CallbackRef(9), 3},
		{map[string]any{"nested": []any{1, "x"}}, []uint16{1, 2}},
		{},
	} {
		b, err := protocol.MarshalArgs(args...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{0x84, 0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x19, 0x01, 0x00, 0xf9, 0x7c, 0x00, 0xf5}) // -2^64, 256 into uint8
	f.Add(uint8(3), []byte{0x82, 0xd9, 0xee, 0x48, 0x61, 'x', 0x01})                                                              // a tagged text as callback
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		m := methods[int(which)%len(methods)]
		vals, err := m.decodeArgs(body, func(ref protocol.CallbackRef) Callback { return Callback{ref: ref} })
		if err != nil {
			var perr *protocol.Error
			if !errors.As(err, &perr) || perr.Code != protocol.CodeBadArgs {
				t.Fatalf("%s: error %v, want BAD_ARGS", m.name, err)
			}
			return
		}
		if len(vals) != len(m.params) {
			t.Fatalf("%s: %d values for %d parameters", m.name, len(vals), len(m.params))
		}
		for i, p := range m.params {
			if vals[i].Type() != p.t {
				t.Fatalf("%s: argument %d is a %s, want %s", m.name, i+1, vals[i].Type(), p.t)
			}
		}
	})
}

// FuzzAdoptBody decodes a handoff's Adopt body as the adopting gateway
// does: it must not panic, fail only with BAD_ARGS, NOT_FOUND or
// APP_EXCEPTION, and on success restore every object under an id from 1
// to next_object.
func FuzzAdoptBody(f *testing.F) {
	r, _ := fuzzRegistry(f)
	state, _ := protocol.Marshal(int64(7))
	for _, b := range []adoptBody{
		{Objects: []movedObject{{ID: 1, Type: "fuzz@1.Counter", State: state}}, NextObject: 1},
		{Objects: []movedObject{{ID: 2, Type: "fuzz@1.Counter", State: state}, {ID: 5, Type: "fuzz@1.Counter", State: []byte{0x20}}}, NextObject: 9},
		{Objects: []movedObject{{ID: 1, Type: "fuzz@1.F", State: state}}, NextObject: 1},
		{Objects: []movedObject{{ID: 3, Type: "nope@1.Counter"}}, NextObject: 1},
		{},
	} {
		args, err := protocol.Marshal([]adoptBody{b})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(args)
	}
	f.Add([]byte{0x81, 0xa1, 0x67, 'o', 'b', 'j', 'e', 'c', 't', 's', 0x9b, 0, 0, 0, 1, 0, 0, 0, 0}) // 2^32 objects declared
	f.Fuzz(func(t *testing.T, args []byte) {
		var bodies []adoptBody
		if err := protocol.Unmarshal(args, &bodies); err != nil || len(bodies) != 1 {
			return // errAdoptBody
		}
		b := &bodies[0]
		objs, perr := r.restoreObjects(b)
		if perr != nil {
			if !slices.Contains([]protocol.Code{protocol.CodeBadArgs, protocol.CodeNotFound, protocol.CodeAppException}, perr.Code) {
				t.Fatalf("restore error %v", perr)
			}
			return
		}
		if len(objs) != len(b.Objects) {
			t.Fatalf("%d objects restored of %d", len(objs), len(b.Objects))
		}
		for id, o := range objs {
			if id == 0 || id > b.NextObject {
				t.Fatalf("object id %d outside 1..%d", id, b.NextObject)
			}
			if o.typ.name != "Counter" || o.v.Type() != reflect.TypeFor[*fuzzCounter]() {
				t.Fatalf("object %d restored as %s (%s)", id, o.typ.name, o.v.Type())
			}
		}
	})
}
