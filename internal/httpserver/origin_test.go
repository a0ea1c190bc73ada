package httpserver

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func upgradeCtx(host, origin string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetHost(host)
	ctx.Request.SetRequestURI("/ws")
	if origin != "" {
		ctx.Request.Header.Set("Origin", origin)
	}
	return &ctx
}

func TestOrigins(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		host     string
		origin   string // "" sends no Origin header
		ok       bool
	}{
		{"no Origin header", nil, "lb:9888", "", true},
		{"same host and port", nil, "lb:9888", "http://lb:9888", true},
		{"same host, other scheme", nil, "lb:9888", "https://lb:9888", true},
		{"same host, case differs", nil, "LB:9888", "http://lb:9888", true},
		{"same host, default port left out", nil, "lb", "http://lb:80", true},
		{"same host, default https port", nil, "lb:443", "https://lb", true},
		{"same IPv6 host", nil, "[::1]:9888", "http://[::1]:9888", true},
		{"same host, other port", nil, "lb:9888", "http://lb:8080", false},
		{"foreign by default", nil, "lb:9888", "https://evil.example", false},
		{"opaque origin", nil, "lb:9888", "null", false},
		{"not an origin", nil, "lb:9888", "https://", false},
		{"a path is not an origin", nil, "lb:9888", "https://lb:9888/x", false},
		{"exact pattern", []string{"https://app.example.com"}, "lb:9888", "https://app.example.com", true},
		{"exact pattern, case", []string{"HTTPS://App.Example.com"}, "lb:9888", "https://app.example.COM", true},
		{"exact pattern, other scheme", []string{"https://app.example.com"}, "lb:9888", "http://app.example.com", false},
		{"exact pattern, explicit default port", []string{"https://app.example.com:443"}, "lb:9888", "https://app.example.com", true},
		{"exact pattern, other port", []string{"https://app.example.com"}, "lb:9888", "https://app.example.com:8443", false},
		{"subdomain wildcard", []string{"https://*.example.com"}, "lb:9888", "https://a.b.example.com", true},
		{"wildcard is not the domain", []string{"https://*.example.com"}, "lb:9888", "https://example.com", false},
		{"wildcard is a label boundary", []string{"https://*.example.com"}, "lb:9888", "https://evilexample.com", false},
		{"suffix attack", []string{"https://app.example.com"}, "lb:9888", "https://app.example.com.evil.test", false},
		{"port wildcard", []string{"http://localhost:*"}, "lb:9888", "http://localhost:3000", true},
		{"port wildcard, no port", []string{"http://localhost:*"}, "lb:9888", "http://localhost", true},
		{"port wildcard, other host", []string{"http://localhost:*"}, "lb:9888", "http://127.0.0.1:3000", false},
		{"IPv6 pattern", []string{"http://[::1]:3000"}, "lb:9888", "http://[::1]:3000", true},
		{"any", []string{"*"}, "lb:9888", "https://evil.example", true},
		{"any, opaque", []string{"*"}, "lb:9888", "null", true},
		{"second pattern", []string{"https://a.test", "https://b.test"}, "lb:9888", "https://b.test", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOrigins(tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			why := o.Refusal(upgradeCtx(tt.host, tt.origin))
			if (why == "") != tt.ok {
				t.Fatalf("Refusal(Origin %q, Host %q) under %v = %q, want allowed=%v", tt.origin, tt.host, o, why, tt.ok)
			}
			if o.Allowed(upgradeCtx(tt.host, tt.origin)) != tt.ok {
				t.Fatalf("Allowed disagrees with Refusal")
			}
		})
	}
}

func TestParseOriginsErrors(t *testing.T) {
	for _, p := range []string{"example.com", "://x", "https://", "https://*", "https://a.*.com", "https://x/path",
		"https://u@x", "https://x:port", "https://x:123456", "https://*example.com"} {
		if _, err := ParseOrigins([]string{p}); err == nil || !strings.Contains(err.Error(), "origin pattern") {
			t.Errorf("ParseOrigins(%q) = %v, want an error naming the pattern", p, err)
		}
	}
	o, err := ParseOrigins([]string{" https://a.test ", "", "http://localhost:*"})
	if err != nil || o.String() != "https://a.test,http://localhost:*" {
		t.Fatalf("ParseOrigins = %v, %v", o, err)
	}
	if (Origins{}).String() != "same host only" {
		t.Fatalf("zero Origins is %q", Origins{}.String())
	}
}

func TestCheckOriginAnswers403(t *testing.T) {
	o, _ := ParseOrigins([]string{"https://*.example.com"})
	ctx := upgradeCtx("lb:9888", "https://evil.test")
	why := o.CheckOrigin(ctx)
	if why == "" || ctx.Response.StatusCode() != fasthttp.StatusForbidden {
		t.Fatalf("CheckOrigin = %q, status %d", why, ctx.Response.StatusCode())
	}
	body := string(ctx.Response.Body())
	for _, want := range []string{"https://evil.test", "lb:9888", "--ws-allowed-origins", "https://*.example.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("403 body %q lacks %q", body, want)
		}
	}
	for _, origin := range []string{"null", "https://", "x"} {
		ctx := upgradeCtx("lb:9888", origin)
		if why := o.CheckOrigin(ctx); !strings.Contains(string(ctx.Response.Body()), "--ws-allowed-origins") {
			t.Errorf("Origin %q: 403 body %q does not say what would allow it (%q)", origin, ctx.Response.Body(), why)
		}
	}
	ok := upgradeCtx("lb:9888", "https://app.example.com")
	if why := o.CheckOrigin(ok); why != "" || ok.Response.StatusCode() != fasthttp.StatusOK {
		t.Fatalf("allowed origin: %q, status %d", why, ok.Response.StatusCode())
	}
}
