package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		insecure    bool
		ok          bool
	}{
		{"127.0.0.1:9889", "", false, true},
		{"[::1]:9889", "", false, true},
		{"localhost:9889", "", false, true},
		{"", "", false, true}, // off
		{"0.0.0.0:9889", "", false, false},
		{":9889", "", false, false},
		{"192.0.2.1:9889", "", false, false},
		{"0.0.0.0:9889", "s3cret", false, true},
		{"0.0.0.0:9889", "", true, true},
	} {
		err := CheckExposure(tc.addr, tc.token, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("CheckExposure(%q, %q, %v) = %v, want ok=%v", tc.addr, tc.token, tc.insecure, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "--admin-token") || !strings.Contains(err.Error(), "--admin-insecure")) {
			t.Errorf("the error does not say what to do: %v", err)
		}
	}
}

func do(t *testing.T, method, url string, hdr map[string]string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp
}

// TestTokenAuth: with a token, every path but /healthz and /readyz needs it as a
// bearer token; a browser gets a cookie from /?token=, which opens GETs
// but not POSTs; cross-site POSTs are refused even without a token.
func TestTokenAuth(t *testing.T) {
	s := New(nil, Limits{})
	s.RequireToken("s3cret")
	s.HandleJSON("/pool", func() any { return []string{"gw1"} })
	s.Handle("/readyz", func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ready") })
	posted := 0
	s.HandlePrefix(fasthttp.MethodPost, "/pool/", func(ctx *fasthttp.RequestCtx) { posted++ })
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	for _, probe := range []string{"/healthz", "/readyz"} {
		if code, _, _ := do(t, "GET", base+probe, nil); code != 200 {
			t.Errorf("%s without token = %d, want 200 (probes send no credentials)", probe, code)
		}
	}
	if code, _, resp := do(t, "GET", base+"/pool", nil); code != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("/pool without token = %d, want 401 with WWW-Authenticate", code)
	}
	if code, _, _ := do(t, "GET", base+"/pool", map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Errorf("/pool with a wrong token = %d, want 401", code)
	}
	if code, body, _ := do(t, "GET", base+"/pool", map[string]string{"Authorization": "Bearer s3cret"}); code != 200 || !strings.Contains(body, "gw1") {
		t.Errorf("/pool with the token = %d %q", code, body)
	}
	code, _, resp := do(t, "GET", base+"/?token=s3cret", nil)
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == tokenCookie {
			cookie = c.Name + "=" + c.Value
		}
	}
	if code != http.StatusSeeOther || cookie == "" {
		t.Fatalf("/?token= = %d, cookie %q: want a redirect that sets the cookie", code, cookie)
	}
	if code, _, _ := do(t, "GET", base+"/pool", map[string]string{"Cookie": cookie}); code != 200 {
		t.Errorf("/pool with the cookie = %d, want 200", code)
	}
	if code, _, _ := do(t, "POST", base+"/pool/gw1/drain", map[string]string{"Cookie": cookie}); code != 401 || posted != 0 {
		t.Errorf("POST with only the cookie = %d (posted %d), want 401", code, posted)
	}
	if code, _, _ := do(t, "POST", base+"/pool/gw1/drain", map[string]string{"Authorization": "Bearer s3cret"}); code != 200 || posted != 1 {
		t.Errorf("POST with the token = %d (posted %d), want 200", code, posted)
	}
	if code, _, _ := do(t, "POST", base+"/pool/gw1/drain", map[string]string{"Authorization": "Bearer s3cret",
		"Origin": "http://evil.example"}); code != 403 || posted != 1 {
		t.Errorf("cross-site POST = %d, want 403", code)
	}
	if code, _, _ := do(t, "GET", base+"/debug/pprof/", map[string]string{"Authorization": "Bearer s3cret"}); code != 404 {
		t.Errorf("/debug/pprof/ without EnablePprof = %d, want 404", code)
	}
}

func TestPprofOnRequest(t *testing.T) {
	s := New(nil, Limits{})
	s.EnablePprof()
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if code, body, _ := do(t, "GET", "http://"+s.Addr()+"/debug/pprof/", nil); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d %.100q", code, body)
	}
}
