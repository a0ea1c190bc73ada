package affinity

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParseKeySource(t *testing.T) {
	tests := []struct {
		in      string
		want    KeySource
		wantErr string // substring; "" means no error
	}{
		{"query:session", KeySource{KeyQuery, "session"}, ""},
		{"query:a:b", KeySource{KeyQuery, "a:b"}, ""},
		{"query:session id", KeySource{KeyQuery, "session id"}, ""},
		{"header:X-Session", KeySource{KeyHeader, "X-Session"}, ""},
		{"cookie:sid", KeySource{KeyCookie, "sid"}, ""},
		{"addr", KeySource{KeyAddr, ""}, ""},
		{"", KeySource{KeyAddr, ""}, ""},
		{"addr:x", KeySource{}, `affinity: key source "addr:x": name: addr takes none`},
		{"addr:", KeySource{}, `name: addr takes none`},
		{"query", KeySource{}, `affinity: key source "query": name: empty, want query:NAME`},
		{"query:", KeySource{}, `name: empty`},
		{"header:", KeySource{}, `affinity: key source "header:": name: empty, want header:NAME`},
		{"header:X Session", KeySource{}, `name: "X Session" is not an HTTP token (byte 1)`},
		{"header:X:Session", KeySource{}, `is not an HTTP token`},
		{"cookie:s;id", KeySource{}, `affinity: key source "cookie:s;id": name: "s;id" is not an HTTP token`},
		{"query:a\nb", KeySource{}, `name: control character at byte 1`},
		{"Header:X-Session", KeySource{}, `affinity: key source "Header:X-Session": kind: "Header" is not one of query, header, cookie, addr`},
		{"ip", KeySource{}, `kind: "ip" is not one of`},
		{" addr", KeySource{}, `kind: " addr" is not one of`},
		{":x", KeySource{}, `kind: "" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKeySource(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeySource(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "affinity: ") {
					t.Errorf("error %q lacks the affinity: prefix", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKeySource(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			// Round trip through the text form.
			again, err := ParseKeySource(got.String())
			if err != nil || again != got {
				t.Errorf("round trip of %q via %q = %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestKeySourceValidate(t *testing.T) {
	tests := []struct {
		name       string
		k          KeySource
		wantErr    string
		wantTCPErr string
	}{
		{"zero is addr", KeySource{}, "", ""},
		{"header", KeySource{KeyHeader, "X-Session"}, "", `affinity: key source "header:X-Session": kind: TCP pass-through has no HTTP request, only addr is allowed`},
		{"query", KeySource{KeyQuery, "session"}, "", `only addr is allowed`},
		{"cookie", KeySource{KeyCookie, "sid"}, "", `only addr is allowed`},
		{"unknown kind", KeySource{Kind: 9, Name: "x"}, `affinity: key source "KeyKind(9):x": kind: unknown`, `kind: unknown`},
		{"addr with name", KeySource{KeyAddr, "x"}, `name: addr takes none, got "x"`, `name: addr takes none`},
		{"header without name", KeySource{Kind: KeyHeader}, `name: empty`, `name: empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error, want string) {
				t.Helper()
				if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
					t.Errorf("%s = %v, want %q", what, err, want)
				}
			}
			check("Validate", tt.k.Validate(), tt.wantErr)
			check("ValidateTCP", tt.k.ValidateTCP(), tt.wantTCPErr)
		})
	}
}

func TestKeySourceText(t *testing.T) {
	var cfg struct {
		Key KeySource `json:"key"`
	}
	if err := json.Unmarshal([]byte(`{"key":"cookie:sid"}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Key != (KeySource{KeyCookie, "sid"}) {
		t.Errorf("unmarshalled %+v", cfg.Key)
	}
	b, err := json.Marshal(cfg)
	if err != nil || string(b) != `{"key":"cookie:sid"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	err = json.Unmarshal([]byte(`{"key":"header:"}`), &cfg)
	if err == nil || !strings.Contains(err.Error(), `affinity: key source "header:": name: empty`) {
		t.Errorf("bad key source error = %v", err)
	}
}

// pipeAddr is a net.Addr that is not an IP, like net.Pipe's.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// strAddr is a net.Addr of an unknown type whose String is host:port.
type strAddr string

func (strAddr) Network() string  { return "tcp" }
func (a strAddr) String() string { return string(a) }

func TestExtract(t *testing.T) {
	v4 := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50123}
	tests := []struct {
		name         string
		source       string
		uri          string
		headers      map[string]string
		cookies      map[string]string
		remote       net.Addr
		noRequest    bool
		want         string
		wantFallback bool
	}{
		{"query", "query:session", "/ws?a=1&session=s-123&b=2", nil, nil, v4, false, "s-123", false},
		{"query percent-decoded", "query:session", "/ws?session=a%2Bb+c", nil, nil, v4, false, "a+b c", false},
		{"query missing", "query:session", "/ws?other=1", nil, nil, v4, false, "192.0.2.7", true},
		{"query empty", "query:session", "/ws?session=", nil, nil, v4, false, "192.0.2.7", true},
		{"header", "header:X-Session", "/ws", map[string]string{"X-Session": "h-9"}, nil, v4, false, "h-9", false},
		{"header case-insensitive", "header:x-session", "/ws", map[string]string{"X-SESSION": "h-9"}, nil, v4, false, "h-9", false},
		{"header missing", "header:X-Session", "/ws", map[string]string{"X-Other": "1"}, nil, v4, false, "192.0.2.7", true},
		{"cookie", "cookie:sid", "/ws", nil, map[string]string{"theme": "dark", "sid": "c-77"}, v4, false, "c-77", false},
		{"cookie missing", "cookie:sid", "/ws", nil, map[string]string{"theme": "dark"}, v4, false, "192.0.2.7", true},
		{"no request falls back", "header:X-Session", "", nil, nil, v4, true, "192.0.2.7", true},
		{"addr ignores the port", "addr", "/ws?session=s", nil, nil, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, false, "192.0.2.7", false},
		{"addr IPv4 4-byte form", "addr", "", nil, nil, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7).To4(), Port: 2}, true, "192.0.2.7", false},
		{"addr IPv4-mapped IPv6", "addr", "", nil, nil, &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 3}, true, "192.0.2.7", false},
		{"addr IPv6 without zone", "addr", "", nil, nil, &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 4, Zone: "eth0"}, true, "fe80::1", false},
		{"addr UDP", "addr", "", nil, nil, &net.UDPAddr{IP: net.ParseIP("2001:db8::5"), Port: 5}, true, "2001:db8::5", false},
		{"addr IPAddr", "addr", "", nil, nil, &net.IPAddr{IP: net.ParseIP("198.51.100.1")}, true, "198.51.100.1", false},
		{"addr of unknown type with port", "addr", "", nil, nil, strAddr("[2001:db8::9%en0]:443"), true, "2001:db8::9", false},
		{"addr of unknown type, bare IP", "addr", "", nil, nil, strAddr("203.0.113.3"), true, "203.0.113.3", false},
		{"addr that is not an IP", "addr", "", nil, nil, pipeAddr{}, true, "pipe", false},
		{"nil addr", "addr", "", nil, nil, nil, true, "", false},
		{"typed nil addr", "addr", "", nil, nil, (*net.TCPAddr)(nil), true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseKeySource(tt.source)
			if err != nil {
				t.Fatal(err)
			}
			var h *fasthttp.RequestHeader
			var uri *fasthttp.URI
			if !tt.noRequest {
				var req fasthttp.Request
				req.SetRequestURI(tt.uri)
				for k, v := range tt.headers {
					req.Header.Set(k, v)
				}
				for k, v := range tt.cookies {
					req.Header.SetCookie(k, v)
				}
				h, uri = &req.Header, req.URI()
			}
			prefix := []byte("keep:")
			got, fallback := ks.Extract(prefix, h, uri, tt.remote)
			if string(got) != "keep:"+tt.want || fallback != tt.wantFallback {
				t.Errorf("Extract = %q, %v, want %q, %v", got, fallback, "keep:"+tt.want, tt.wantFallback)
			}
		})
	}
}

// TestExtractAddrKeepsReconnectsTogether: the same client from two ports
// hashes to the same key.
func TestExtractAddrKeepsReconnectsTogether(t *testing.T) {
	var ks KeySource
	a, _ := ks.Extract(nil, nil, nil, &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 40000})
	b, _ := ks.Extract(nil, nil, nil, &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 40001})
	if HashKey(a) != HashKey(b) {
		t.Errorf("keys %q and %q differ", a, b)
	}
}

func TestKeyKindString(t *testing.T) {
	for k, want := range map[KeyKind]string{KeyAddr: "addr", KeyQuery: "query", KeyHeader: "header", KeyCookie: "cookie", 7: "KeyKind(7)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(k), k.String(), want)
		}
	}
}

// FuzzParseKeySource checks that parsing never panics, that what parses
// validates and survives a round trip through its text form, and that
// extraction from the parsed source works without a request.
func FuzzParseKeySource(f *testing.F) {
	for _, s := range []string{"", "addr", "addr:", "query:session", "header:X-Session", "cookie:sid", "header:", "x:y", "query:a:b", "cookie:\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeySource(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "affinity: key source ") {
				t.Fatalf("error %q lacks the prefix", err)
			}
			return
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate: %v", s, err)
		}
		again, err := ParseKeySource(k.String())
		if err != nil || again != k {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
		key, _ := k.Extract(nil, nil, nil, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)})
		if string(key) != "10.0.0.1" {
			t.Fatalf("Extract without a request = %q", key)
		}
	})
}
