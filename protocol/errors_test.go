package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorBody(t *testing.T) {
	tests := []struct {
		code     Code
		msg, typ string
	}{
		{CodeAppException, "out of stock", "OrderError"},
		{CodeSessionLost, "gateway gw2 died", ""},
		{CodeDraining, "", ""},
		{Code(999), "future code", ""},
	}
	for _, tt := range tests {
		b := AppendErrorBody(nil, tt.code, tt.msg, tt.typ)
		c, msg, typ, err := DecodeErrorBody(b)
		if err != nil || c != tt.code || string(msg) != tt.msg || string(typ) != tt.typ {
			t.Errorf("round trip of %v = %v %q %q %v", tt, c, msg, typ, err)
		}
		e := ErrorFromBody(b)
		if e.Code != tt.code || e.Message != tt.msg || e.Type != tt.typ {
			t.Errorf("ErrorFromBody = %+v", e)
		}
	}
	for _, bad := range [][]byte{nil, {0, 1}, {0, 1, 0, 5, 'a'}, {0, 1, 0, 0, 0, 1}, {0, 1, 0, 0, 0, 0, 'x'}} {
		if _, _, _, err := DecodeErrorBody(bad); err == nil {
			t.Errorf("DecodeErrorBody(%x) accepted", bad)
		}
		if e := ErrorFromBody(bad); e.Code != CodeBadFrame {
			t.Errorf("ErrorFromBody(%x) = %v", bad, e)
		}
	}
	long := strings.Repeat("x", 70000)
	_, msg, _, err := DecodeErrorBody(AppendErrorBody(nil, CodeInternal, long, ""))
	if err != nil || len(msg) != 0xffff {
		t.Fatalf("long message: len %d, %v", len(msg), err)
	}
}

func TestErrorIsByCode(t *testing.T) {
	err := fmt.Errorf("call: %w", Errorf(CodeSessionLost, "gateway %s died", "gw1"))
	if !errors.Is(err, ErrSessionLost) {
		t.Fatal("errors.Is by code failed")
	}
	if errors.Is(err, ErrDraining) {
		t.Fatal("errors.Is matched another code")
	}
	if got := err.Error(); got != "call: SESSION_LOST: gateway gw1 died" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestCodeNames(t *testing.T) {
	for c := CodeBadFrame; c <= CodeMoved; c++ {
		got, ok := ParseCode(c.String())
		if !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v", c.String(), got, ok)
		}
	}
	if Code(77).String() != "CODE_77" {
		t.Fatal(Code(77).String())
	}
	if _, ok := ParseCode("NOPE"); ok {
		t.Fatal("ParseCode accepted NOPE")
	}
}

// TestCodeSlots: every known code has a counter slot of its own, labelled
// with its name (MOVED, added last, included); success is OK and an
// unknown code OTHER.
func TestCodeSlots(t *testing.T) {
	seen := map[int]bool{}
	for c := CodeBadFrame; c <= CodeMoved; c++ {
		i := CodeSlot(c)
		if seen[i] || SlotLabel(i) != c.String() {
			t.Fatalf("code %s: slot %d labelled %q", c, i, SlotLabel(i))
		}
		seen[i] = true
	}
	if SlotLabel(CodeSlot(0)) != "OK" || SlotLabel(CodeSlot(999)) != "OTHER" {
		t.Fatalf("success %q, unknown %q", SlotLabel(CodeSlot(0)), SlotLabel(CodeSlot(999)))
	}
}
