package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func testGateway() Member {
	return Member{
		Name:     "gw1",
		Role:     RoleGateway,
		Addrs:    Addrs{TCP: "127.0.0.1:8990", WS: "127.0.0.1:8888", HTTP: "127.0.0.1:8889"},
		Modules:  []string{"orders@1", "cart@1", "ticker@1"},
		Weight:   3,
		State:    StateDraining,
		Zone:     "eu-1",
		Instance: 0x0123456789abcdef,
	}
}

func TestMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Member
	}{
		{"full gateway", testGateway()},
		{"minimal proxy", Member{Role: RoleProxy}},
		{"tls gateway", Member{Role: RoleGateway, Addrs: Addrs{TCP: "10.0.0.1:8990", TLS: true}}},
		{"ipv6 and big weight", Member{Role: RoleGateway, Addrs: Addrs{TCP: "[2001:db8::1]:8990"}, Weight: MaxWeight}},
		{"unknown newer role", Member{Role: 9, Weight: 1}},
		{"duplicate modules", Member{Role: RoleGateway, Modules: []string{"b@1", "a@1", "b@1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeMeta(tt.in)
			if err != nil {
				t.Fatalf("EncodeMeta: %v", err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			want := tt.in.normalized()
			want.Name = "" // Name and Addrs.Gossip travel outside the metadata
			if !got.Equal(want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
			t.Logf("%d bytes", len(b))
		})
	}
}

func TestMetaForwardCompatible(t *testing.T) {
	b, err := EncodeMeta(testGateway())
	if err != nil {
		t.Fatal(err)
	}
	// A newer writer: higher version, unknown tags before, between and
	// after the known ones, one of them empty.
	newer := []byte{MetaVersion + 5, 200, 3, 'x', 'y', 'z'}
	newer = append(newer, b[1:7]...) // role and state
	newer = append(newer, 77, 0)
	newer = append(newer, b[7:]...)
	newer = append(newer, 250, 4, 1, 2, 3, 4)
	got, err := DecodeMeta(newer)
	if err != nil {
		t.Fatalf("DecodeMeta of a newer encoding: %v", err)
	}
	want := testGateway().normalized()
	want.Name = ""
	if !got.Equal(want) {
		t.Fatalf("newer encoding:\n got %+v\nwant %+v", got, want)
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	valid, _ := EncodeMeta(Member{Role: RoleGateway})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version 0", []byte{0, tagRole, 1, 1}, "version 0"},
		{"incompatible framing", []byte{128, tagRole, 1, 1}, "version 128"},
		{"no role", []byte{1}, "role"},
		{"truncated header", append(bytes.Clone(valid), tagZone), "truncated"},
		{"truncated value", append(bytes.Clone(valid), tagZone, 9, 'a'), "wants 9 bytes"},
		{"role length", []byte{1, tagRole, 2, 1, 1}, "length 2"},
		{"weight zero", append(bytes.Clone(valid), tagWeight, 1, 0), "weight"},
		{"weight overlong", append(bytes.Clone(valid), tagWeight, 2, 0x81, 0x80), "weight"},
		{"bad address", append(bytes.Clone(valid), tagTCP, 3, 'a', 'b', 'c'), "tcp address"},
		{"empty module", append(bytes.Clone(valid), tagModule, 0), "module"},
		{"too large", append(bytes.Clone(valid), bytes.Repeat([]byte{99, 0}, MaxMetaSize)...), "over 512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMeta(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "discovery: ") {
				t.Fatalf("DecodeMeta error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestMetaSizeLimit(t *testing.T) {
	m := Member{Role: RoleGateway, Addrs: Addrs{TCP: "127.0.0.1:8990"}}
	for i := 0; ; i++ {
		m.Modules = append(m.Modules, fmt.Sprintf("module%03d@1", i))
		b, err := EncodeMeta(m)
		if err == nil {
			if len(b) > MaxMetaSize {
				t.Fatalf("encoded %d bytes without error", len(b))
			}
			continue
		}
		if !errors.Is(err, ErrMetaTooLarge) {
			t.Fatalf("error %v does not match ErrMetaTooLarge", err)
		}
		if !strings.HasPrefix(err.Error(), "discovery: ") || !strings.Contains(err.Error(), "modules") {
			t.Fatalf("error %q should say discovery: and blame the modules", err)
		}
		t.Logf("%d modules of 11 bytes fit; then: %v", i, err)
		if i < 30 {
			t.Fatalf("only %d modules fit; the budget promises about 40", i)
		}
		return
	}
}

func TestMetaEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   Member
	}{
		{"no role", Member{}},
		{"negative weight", Member{Role: RoleGateway, Weight: -1}},
		{"weight too big", Member{Role: RoleGateway, Weight: MaxWeight + 1}},
		{"address without port", Member{Role: RoleGateway, Addrs: Addrs{WS: "host"}}},
		{"empty module", Member{Role: RoleGateway, Modules: []string{""}}},
		{"zone too long", Member{Role: RoleGateway, Zone: strings.Repeat("z", 256)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncodeMeta(tt.in); err == nil || !strings.HasPrefix(err.Error(), "discovery: encode metadata: ") {
				t.Fatalf("EncodeMeta error = %v", err)
			}
		})
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Member{testGateway(), {Role: RoleProxy}, {Role: RoleGateway, Addrs: Addrs{TCP: "[::1]:1"}}} {
		b, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(bytes.Clone(b), 200, 255))
	}
	f.Add([]byte{})
	f.Add([]byte{1, tagModule, 255})
	f.Add([]byte{127, tagRole, 1, 2, tagWeight, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes encodes, and re-decodes to the same member.
		enc, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		m2, err := DecodeMeta(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !m2.Equal(m) {
			t.Fatalf("unstable: %+v then %+v", m, m2)
		}
	})
}
