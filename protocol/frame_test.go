package protocol

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

func sampleFrame() *Frame {
	return &Frame{
		Type:     TypeCall,
		Flags:    FlagStateless | FlagIdempotent,
		CallID:   0xdeadbeef,
		Session:  SessionID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		Object:   42,
		Deadline: 1500,
		Module:   []byte("orders@1"),
		TypeName: []byte("Orders"),
		Method:   []byte("GetOrder"),
		Trace:    []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		Body:     []byte{0x81, 0x63, 'o', '-', '1'},
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		f    *Frame
	}{
		{"full call", sampleFrame()},
		{"empty ping", &Frame{Type: TypePing}},
		{"welcome with body", &Frame{Type: TypeWelcome, Session: NewSessionID(), Body: []byte{0xa0}}},
		{"max strings", &Frame{Type: TypeEvent, Module: bytes.Repeat([]byte("m"), 255), TypeName: bytes.Repeat([]byte("t"), 255),
			Method: bytes.Repeat([]byte("n"), 255), Trace: bytes.Repeat([]byte("r"), 255)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendFrame(nil, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.f.Size() {
				t.Fatalf("encoded %d bytes, Size says %d", len(b), tt.f.Size())
			}
			var g Frame
			if err := Decode(b, &g); err != nil {
				t.Fatal(err)
			}
			if !framesEqual(tt.f, &g) {
				t.Fatalf("decoded %+v, want %+v", g, *tt.f)
			}
		})
	}
}

func framesEqual(a, b *Frame) bool {
	return a.Type == b.Type && a.Flags == b.Flags && a.CallID == b.CallID && a.Session == b.Session &&
		a.Object == b.Object && a.Deadline == b.Deadline && bytes.Equal(a.Module, b.Module) &&
		bytes.Equal(a.TypeName, b.TypeName) && bytes.Equal(a.Method, b.Method) &&
		bytes.Equal(a.Trace, b.Trace) && bytes.Equal(a.Body, b.Body)
}

func TestDecodeErrors(t *testing.T) {
	good, _ := AppendFrame(nil, sampleFrame())
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name     string
		in       []byte
		code     Code
		wantCall bool // the call id was recovered for the reply
	}{
		{"empty", nil, CodeBadFrame, false},
		{"short header", good[:HeaderSize-1], CodeBadFrame, false},
		{"truncated body", good[:len(good)-1], CodeBadFrame, true},
		{"trailing byte", append(append([]byte(nil), good...), 0), CodeBadFrame, true},
		{"version 2", mutate(func(b []byte) []byte { b[0] = 2; return b }), CodeUnsupportedVersion, true},
		{"version 0", mutate(func(b []byte) []byte { b[0] = 0; return b }), CodeUnsupportedVersion, true},
		{"unknown type", mutate(func(b []byte) []byte { b[1] = 200; return b }), CodeBadFrame, true},
		{"type zero", mutate(func(b []byte) []byte { b[1] = 0; return b }), CodeBadFrame, true},
		{"body length huge", mutate(func(b []byte) []byte { b[36], b[37] = 0xff, 0xff; return b }), CodeBadFrame, true},
		{"string lengths overrun", mutate(func(b []byte) []byte { b[40] = 0xff; return b }), CodeBadFrame, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			err := Decode(tt.in, &f)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Decode = %v, want code %s", err, tt.code)
			}
			if tt.wantCall && f.CallID != 0xdeadbeef {
				t.Fatalf("call id %x not recovered", f.CallID)
			}
		})
	}
}

func TestAppendFrameRejectsLongStrings(t *testing.T) {
	f := sampleFrame()
	f.Method = bytes.Repeat([]byte("x"), 256)
	dst := []byte("keep")
	got, err := AppendFrame(dst, f)
	if !errors.Is(err, ErrBadFrame) {
		t.Fatalf("err = %v, want BAD_FRAME", err)
	}
	if string(got) != "keep" {
		t.Fatalf("dst changed to %q", got)
	}
}

func TestPatchInPlace(t *testing.T) {
	b, _ := AppendFrame(nil, sampleFrame())
	s := NewSessionID()
	SetCallID(b, 99)
	SetSession(b, s)
	SetFlags(b, FlagNewSession)
	SetDeadline(b, 7)
	typ, fl, id, ok := PeekHeader(b)
	if !ok || typ != TypeCall || fl != FlagNewSession || id != 99 {
		t.Fatalf("PeekHeader = %v %v %v %v", typ, fl, id, ok)
	}
	var f Frame
	if err := Decode(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Session != s || f.Deadline != 7 || string(f.Method) != "GetOrder" {
		t.Fatalf("patched frame decoded as %+v", f)
	}
	if _, _, _, ok := PeekHeader(b[:10]); ok {
		t.Fatal("PeekHeader accepted a short buffer")
	}
}

// TestSpecExample checks the worked example of SPEC.md section 10 against
// the encoder, so the document cannot drift from the code.
func TestSpecExample(t *testing.T) {
	spec, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(spec), "## 10. Example")
	if !ok {
		t.Fatal("SPEC.md has no section 10")
	}
	_, block, _ := strings.Cut(after, "```\n")
	block, _, _ = strings.Cut(block, "```")
	var hexDigits strings.Builder
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		for _, w := range strings.Fields(sc.Text()) {
			if len(w) != 2 {
				break // the comment column starts
			}
			if _, err := hex.DecodeString(w); err != nil {
				break
			}
			hexDigits.WriteString(w)
		}
	}
	want, err := hex.DecodeString(hexDigits.String())
	if err != nil {
		t.Fatal(err)
	}
	args, err := MarshalArgs("o-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &Frame{Type: TypeCall, CallID: 7, Module: []byte("orders@1"), TypeName: []byte("Orders"),
		Method: []byte("GetOrder"), Body: args}
	var buf bytes.Buffer
	c := NewStreamConn(nopConn{&buf}, ConnOptions{})
	if err := c.Send(f); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("SPEC example is\n%x\nencoder writes\n%x", want, buf.Bytes())
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr bool
	}{
		{"orders@1.Orders.GetOrder", Target{"orders@1", "Orders", "GetOrder"}, false},
		{"orders@1.2.Orders.GetOrder", Target{"orders@1.2", "Orders", "GetOrder"}, false},
		{"orders.Orders.GetOrder", Target{}, true},
		{"orders@1.GetOrder", Target{}, true},
		{"orders@1..GetOrder", Target{}, true},
		{"orders@1.Orders.", Target{}, true},
		{"", Target{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v", tt.in, got, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestSessionID(t *testing.T) {
	a, b := NewSessionID(), NewSessionID()
	if a == b || a.IsZero() {
		t.Fatal("NewSessionID not random")
	}
	p, err := ParseSessionID(a.String())
	if err != nil || p != a {
		t.Fatalf("ParseSessionID(String) = %v, %v", p, err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("g", 32), strings.Repeat("a", 31)} {
		if _, err := ParseSessionID(bad); err == nil {
			t.Errorf("ParseSessionID(%q) accepted", bad)
		}
	}
}
