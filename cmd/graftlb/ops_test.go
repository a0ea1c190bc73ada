package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestVersionPrintsBuildInfo runs the built binary's `version`: it names
// the module and Go versions and, when the build was stamped (a git
// clone, as in CI; Go does not stamp git worktrees), the revision that
// `go version -m` finds in the binary; never the old "dev".
func TestVersionPrintsBuildInfo(t *testing.T) {
	bin := proctest.Binary(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("graftlb version: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^graftlb \S+ revision ([0-9a-f]{40}(\+dirty)? \(\S+\)|unknown) go\d`).MatchString(line) {
		t.Fatalf("graftlb version printed %q; want the module version, the revision and the Go version", line)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if m := regexp.MustCompile(`vcs\.revision=([0-9a-f]{40})`).FindSubmatch(meta); m != nil {
		if !strings.Contains(line, string(m[1])) {
			t.Fatalf("graftlb version printed %q; the binary was built from %s", line, m[1])
		}
	} else {
		t.Logf("this build carries no VCS stamp (a git worktree?): %q", line)
	}
}

// TestFormatVersion renders a stamped build's info.
func TestFormatVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.11", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "742815adbe236aaeb8ebdf5493799ebeebadacf5"},
		{Key: "vcs.time", Value: "2026-12-01T09:17:23Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	want := "graftlb (devel) revision 742815adbe236aaeb8ebdf5493799ebeebadacf5+dirty (2026-12-01T09:17:23Z) go1.26.11"
	if got := formatVersion(bi, ""); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	bi.Main.Version = "v1.2.0"
	bi.Settings = nil
	if got, want := formatVersion(bi, ""), "graftlb v1.2.0 revision unknown go1.26.11"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := formatVersion(bi, "v9"), "graftlb v9 revision unknown go1.26.11"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestHealthcheck checks `graftlb healthcheck` against real HTTP servers:
// 0 on 2xx, 1 on another status, a refused connection or a server slower
// than --timeout, 2 on a bad command line.
func TestHealthcheck(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	defer close(release)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/ok"
	_ = ln.Close()

	for _, tc := range []struct {
		name string
		args []string
		env  string
		want int
	}{
		{"2xx", []string{srv.URL + "/ok"}, "", 0},
		{"from the environment", nil, srv.URL + "/ok", 0},
		{"503", []string{srv.URL + "/readyz"}, "", 1},
		{"refused", []string{closed}, "", 1},
		{"timeout", []string{"--timeout", "200ms", srv.URL + "/slow"}, "", 1},
		{"no URL", nil, "", 2},
		{"not http", []string{"ftp://127.0.0.1/x"}, "", 2},
		{"two URLs", []string{srv.URL + "/ok", srv.URL + "/ok"}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(HealthcheckEnv, tc.env)
			var stdout, stderr bytes.Buffer
			start := time.Now()
			got := run(append([]string{"healthcheck"}, tc.args...), &stdout, &stderr)
			if got != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tc.want, stdout.String(), stderr.String())
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("took %v", took)
			}
		})
	}
}

// TestLogTimestampsHaveMilliseconds reads a gateway's JSON log and renders
// a console log line: both timestamps carry three fractional digits.
func TestLogTimestampsHaveMilliseconds(t *testing.T) {
	gw := startGW(t, "gw1")
	proctest.Eventually(t, 10*time.Second, "a log line", func() bool { return strings.Contains(gw.Stderr(), "\n") })
	first, _, _ := strings.Cut(gw.Stderr(), "\n")
	var rec struct {
		Time string `json:"time"`
	}
	if err := json.Unmarshal([]byte(first), &rec); err != nil {
		t.Fatalf("first log line %q: %v", first, err)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`).MatchString(rec.Time) {
		t.Fatalf("JSON log time %q has no milliseconds", rec.Time)
	}
	var buf bytes.Buffer
	lf := logFlags{level: "info", format: "console"}
	log, err := lf.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hello")
	if !regexp.MustCompile(`^\S*\d\d:\d\d:\d\d\.\d{3}`).MatchString(buf.String()) {
		t.Fatalf("console log line %q has no milliseconds", buf.String())
	}
}
