package protocol

import (
	"bytes"
	"strings"
	"testing"
)

func TestCallbackRefTag(t *testing.T) {
	b, err := MarshalArgs("x", CallbackRef(5))
	if err != nil {
		t.Fatal(err)
	}
	// SPEC.md section 9: tag 61000 is 0xd9 0xee 0x48.
	if !bytes.Contains(b, []byte{0xd9, 0xee, 0x48, 0x05}) {
		t.Fatalf("callback ref encoded as %x", b)
	}
	var args []any
	if err := Unmarshal(b, &args); err != nil {
		t.Fatal(err)
	}
	if ref, ok := args[1].(CallbackRef); !ok || ref != 5 {
		t.Fatalf("decoded %T %v, want CallbackRef(5)", args[1], args[1])
	}
	var typed struct {
		_   struct{} `cbor:",toarray"`
		S   string
		Ref CallbackRef
	}
	if err := Unmarshal(b, &typed); err != nil || typed.Ref != 5 || typed.S != "x" {
		t.Fatalf("typed decode: %+v %v", typed, err)
	}
}

func TestValueLimits(t *testing.T) {
	deep := strings.Repeat("\x81", MaxValueDepth+1) + "\x00" // arrays nested too deep
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"int", []byte{0x01}, true},
		{"map", []byte{0xa1, 0x61, 'a', 0x01}, true},
		{"too deep", []byte(deep), false},
		{"duplicate keys", []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}, false},
		{"huge array header", []byte{0x9a, 0xff, 0xff, 0xff, 0xff}, false},
		{"truncated", []byte{0x82, 0x01}, false},
		{"two items", []byte{0x01, 0x02}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := Unmarshal(tt.in, &v)
			if (err == nil) != tt.ok {
				t.Fatalf("Unmarshal(%x) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestMapsDecodeToStringKeys(t *testing.T) {
	b, _ := Marshal(map[string]any{"id": "o-1", "total": 12.5})
	var v any
	if err := Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok || m["id"] != "o-1" || m["total"] != 12.5 {
		t.Fatalf("decoded %T %v", v, v)
	}
}
