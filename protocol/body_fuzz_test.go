package protocol

import (
	"bytes"
	"reflect"
	"runtime"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// Fuzz targets for the bodies a peer sends: HELLO and WELCOME (CBOR maps),
// ERROR and GOAWAY (binary), and CBOR call arguments with the decoder
// limits of value.go. Each checks that decoding never panics, allocates in
// proportion to its input (no length a peer declares makes it allocate
// ahead), and that what decodes survives a round trip.

// allocPerByte and allocSlack bound what decoding n bytes may allocate:
// allocPerByte*n + allocSlack. A CBOR item of one byte (an empty array
// inside an array, say) becomes an interface and a slice header in Go, and
// a map pair of three bytes a map entry: tens of bytes per input byte, far
// below the bound, while a decoder that trusted a declared length (an
// array header claiming 2^32 items) would allocate gigabytes.
const (
	allocPerByte = 256
	allocSlack   = 64 << 10
)

// allocated returns the bytes the process has allocated on the heap so
// far. runtime/metrics' count would be cheaper, but it counts small
// objects a span at a time (kilobytes at once, or nothing).
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// checkAlloc runs decode and fails t if it allocated more than the bound
// for an input of n bytes, three times in a row: the count is the whole
// process's, and the first decode into a type fills the codec's caches,
// while a decoder that over-allocates for an input does so every time.
// decode must be repeatable.
func checkAlloc(t *testing.T, n int, decode func()) {
	t.Helper()
	limit := uint64(allocPerByte*n + allocSlack)
	var got uint64
	for range 3 {
		before := allocated()
		decode()
		if got = allocated() - before; got <= limit {
			return
		}
	}
	t.Fatalf("decoding %d bytes allocated %d bytes (limit %d), three times", n, got, limit)
}

// checkStable fails t unless what decodes from b re-encodes to bytes that
// decode to a value that encodes the same again: decode, encode, decode is
// a fixed point. encode must be deterministic (sorted map keys).
func checkStable[T any](t *testing.T, b []byte, encode func(any) ([]byte, error)) {
	t.Helper()
	var v T
	var err error
	checkAlloc(t, len(b), func() { err = Unmarshal(b, &v) })
	if err != nil {
		return // well-formed or not, not a T
	}
	if err := ValidValue(b); err != nil {
		t.Fatalf("Unmarshal accepted %x that ValidValue refuses: %v", b, err)
	}
	once, err := encode(v)
	if err != nil {
		t.Fatalf("decoded %#v does not encode: %v", v, err)
	}
	var w T
	if err := Unmarshal(once, &w); err != nil {
		t.Fatalf("re-encoding %x of %#v does not decode: %v", once, v, err)
	}
	twice, err := encode(w)
	if err != nil {
		t.Fatalf("%#v does not encode: %v", w, err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("unstable round trip of %x:\n%x\n%x", b, once, twice)
	}
}

// canonical encodes with sorted map keys, the CallbackRef tag registered,
// so that equal values encode to equal bytes.
var canonical = func() cbor.EncMode {
	tags := cbor.NewTagSet()
	if err := tags.Add(cbor.TagOptions{EncTag: cbor.EncTagRequired, DecTag: cbor.DecTagRequired},
		reflect.TypeFor[CallbackRef](), CallbackTag); err != nil {
		panic(err)
	}
	em, err := cbor.CanonicalEncOptions().EncModeWithTags(tags)
	if err != nil {
		panic(err)
	}
	return em
}()

func mustMarshal(f *testing.F, v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzHelloBody decodes HELLO bodies as the gateway and the proxy do.
func FuzzHelloBody(f *testing.F) {
	f.Add(mustMarshal(f, Hello{}))
	f.Add(mustMarshal(f, Hello{Client: "graftlb-go/1", Credential: []byte("token"), MaxFrame: 1 << 20}))
	f.Add(mustMarshal(f, Hello{Client: HandoffClient, Instance: "00ff00ff00ff00ff"}))
	f.Add(mustMarshal(f, map[string]any{"client": "x", "unknown": []any{1, "two"}}))
	f.Add([]byte{0xa2, 0x66, 'c', 'l', 'i', 'e', 'n', 't', 0x61, 'a', 0x66, 'c', 'l', 'i', 'e', 'n', 't', 0x61, 'b'}) // duplicate key
	f.Add([]byte{0xbf, 0x69, 'm', 'a', 'x', '_', 'f', 'r', 'a', 'm', 'e', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // a map of 2^64-1 pairs
	f.Fuzz(func(t *testing.T, b []byte) { checkStable[Hello](t, b, canonical.Marshal) })
}

// FuzzWelcomeBody decodes WELCOME bodies as the client and the proxy do.
func FuzzWelcomeBody(f *testing.F) {
	f.Add(mustMarshal(f, Welcome{}))
	f.Add(mustMarshal(f, Welcome{Server: "gw-1", MaxFrame: 1 << 20, MaxInflight: 1024, IdleTimeoutMs: 300000, SessionTTLMs: 60000}))
	f.Add(mustMarshal(f, map[string]any{"server": "graftlb", "max_inflight": -1}))
	f.Add([]byte{0x9a, 0xff, 0xff, 0xff, 0xff}) // an array of 2^32-1 items
	f.Fuzz(func(t *testing.T, b []byte) { checkStable[Welcome](t, b, canonical.Marshal) })
}

// FuzzArgs decodes call arguments as the gateway does: an array of raw
// items, then each item into an interface (maps of text keys, callback
// references by their tag) and into the typed parameters methods take.
func FuzzArgs(f *testing.F) {
	for _, args := range [][]any{
		{},
		{"o-1"},
		{"x", CallbackRef(5), int64(-3), 2.5, []byte{1, 2}, nil, true},
		{map[string]any{"sku": "A1", "qty": uint64(2)}, []any{"a", []any{"b"}}},
	} {
		b, err := MarshalArgs(args...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(bytes.Repeat([]byte{0x81}, MaxValueDepth+2))                           // nested too deep
	f.Add([]byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})                                  // 2^32 items declared
	f.Add([]byte{0x81, 0xd9, 0xee, 0x48, 0x63, 'a', 'b', 'c'})                   // a callback tag on text
	f.Add([]byte{0x81, 0xa1, 0x01, 0x02})                                        // a map with an integer key
	f.Add([]byte{0x81, 0x5f, 0x41, 0x00, 0x41, 0x01, 0xff})                      // indefinite byte string
	f.Add([]byte{0x82, 0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xf9, 0x7e, 0x00}) // bignum, NaN
	f.Fuzz(func(t *testing.T, b []byte) {
		var raw []RawValue
		var err error
		checkAlloc(t, len(b), func() { err = Unmarshal(b, &raw) })
		if err != nil {
			return
		}
		if err := ValidValue(b); err != nil {
			t.Fatalf("Unmarshal accepted %x that ValidValue refuses: %v", b, err)
		}
		for _, item := range raw {
			checkStable[any](t, item, canonical.Marshal)
			checkAlloc(t, len(item), func() {
				var s string
				var i int64
				var u uint64
				var fl float64
				var ref CallbackRef
				var m map[string]any
				var l []string
				for _, v := range []any{&s, &i, &u, &fl, &ref, &m, &l} {
					_ = Unmarshal(item, v)
				}
			})
		}
	})
}

// FuzzErrorBody decodes ERROR and GOAWAY bodies; what decodes is exactly
// what AppendErrorBody writes for its fields.
func FuzzErrorBody(f *testing.F) {
	f.Add(AppendErrorBody(nil, CodeNotFound, "no such method", ""))
	f.Add(AppendErrorBody(nil, CodeAppException, "boom", "ValueError"))
	f.Add(AppendErrorBody(nil, CodeMoved, "session moved", "tcp://10.0.0.2:8080"))
	f.Add(AppendErrorBody(nil, Code(999), "", ""))
	f.Add([]byte{0, 1, 0xff, 0xff})
	f.Add([]byte{0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e *Error
		checkAlloc(t, len(b), func() { e = ErrorFromBody(b) })
		c, msg, typ, err := DecodeErrorBody(b)
		if err != nil {
			if e.Code != CodeBadFrame {
				t.Fatalf("malformed body %x became %v, want BAD_FRAME", b, e)
			}
			return
		}
		if out := AppendErrorBody(nil, c, string(msg), string(typ)); !bytes.Equal(out, b) {
			t.Fatalf("body %x re-encodes as %x", b, out)
		}
		if e.Code != c || e.Message != string(msg) || e.Type != string(typ) {
			t.Fatalf("ErrorFromBody(%x) = %+v, DecodeErrorBody = %v %q %q", b, e, c, msg, typ)
		}
		_ = e.Error()
	})
}
