package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestAdminExposureRefused: a proxy asked to bind its admin listener
// beyond loopback with neither a token nor --admin-insecure refuses to
// start and says why.
func TestAdminExposureRefused(t *testing.T) {
	cmd := exec.Command(proctest.Binary(t), "proxy", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "0.0.0.0:0",
		"--backend", "tcp://127.0.0.1:1#name=gw1")
	cmd.Env = envWith("GRAFTLB_ADMIN_TOKEN=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2; output:\n%s", err, out)
	}
	for _, want := range []string{"not on loopback", "--admin-token", "--admin-insecure"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func authGet(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String())
}

// TestAdminAPIThroughProcess: with a token from the environment the admin
// listener may bind any address; every path but /healthz and /readyz needs the token;
// POST /pool/{gw}/drain takes a gateway out of placement; GET
// /sessions/{id} finds a session; GET /config redacts the token.
func TestAdminAPIThroughProcess(t *testing.T) {
	g := startGW(t, "gw1")
	p := proctest.StartEnv(t, envWith("GRAFTLB_ADMIN_TOKEN=tok-123"), "proxy", "--tcp", "127.0.0.1:0", "--ws", "",
		"--admin", "0.0.0.0:0", "--backend", "tcp://"+g.Addr.TCP+"#name=gw1", "--admin-pprof")
	admin := strings.Replace(p.Addr.Admin, "[::]", "127.0.0.1", 1)
	admin = strings.Replace(admin, "0.0.0.0", "127.0.0.1", 1)
	base := "http://" + admin
	if code, _ := authGet(t, base+"/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d without token, want 200", code)
	}
	for _, path := range []string{"/pool", "/metrics", "/config", "/", "/debug/pprof/"} {
		if code, _ := authGet(t, base+path, ""); code != 401 {
			t.Errorf("%s without token = %d, want 401", path, code)
		}
		if code, _ := authGet(t, base+path, "tok-123"); code != 200 {
			t.Errorf("%s with token = %d, want 200", path, code)
		}
	}
	_, cfg := authGet(t, base+"/config", "tok-123")
	if strings.Contains(string(cfg), "tok-123") || !strings.Contains(string(cfg), `"token": "(set)"`) {
		t.Errorf("/config does not redact the token:\n%s", cfg)
	}

	c := dialT(t, "tcp://"+p.Addr.TCP)
	s := c.NewSession()
	if _, err := s.New(ctxT(t), "cart@1", "Cart"); err != nil {
		t.Fatal(err)
	}
	code, body := authGet(t, base+"/sessions/"+s.ID().String(), "tok-123")
	var info struct {
		Gateway    string   `json:"gateway"`
		Confirmed  bool     `json:"confirmed"`
		Preference []string `json:"preference"`
	}
	if code != 200 || json.Unmarshal(body, &info) != nil || info.Gateway != "gw1" || !info.Confirmed || len(info.Preference) != 1 {
		t.Errorf("/sessions/%s = %d %s", s.ID(), code, body)
	}

	post := func(path, token string) int {
		req, _ := http.NewRequest("POST", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/pool/gw1/drain", ""); code != 401 {
		t.Errorf("drain without token = %d, want 401", code)
	}
	if code := post("/pool/gw1/drain", "tok-123"); code != 200 {
		t.Errorf("drain = %d, want 200", code)
	}
	if _, err := c.NewSession().New(ctxT(t), "cart@1", "Cart"); err == nil {
		t.Error("a new session was placed on the only gateway, which is drained")
	}
	if code := post("/pool/gw1/undrain", "tok-123"); code != 200 {
		t.Errorf("undrain = %d, want 200", code)
	}
	if _, err := c.NewSession().New(ctxT(t), "cart@1", "Cart"); err != nil {
		t.Errorf("after undrain: %v", err)
	}
	if code := post("/pool/nosuch/drain", "tok-123"); code != 404 {
		t.Errorf("drain of an unknown gateway = %d, want 404", code)
	}
}
