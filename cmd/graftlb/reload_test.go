package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/internal/proctest"
)

// liveConfig is the part of the proxy's GET /config the reload tests read.
type liveConfig struct {
	Proxy struct {
		Name               string  `json:"name"`
		MaxConns           int     `json:"max_conns"`
		MaxSessions        int     `json:"max_sessions"`
		MaxSessionsPerConn int     `json:"max_sessions_per_conn"`
		CallTimeout        int64   `json:"call_timeout"`
		RetryBudget        float64 `json:"retry_budget"`
		SessionIdle        int64   `json:"session_idle"`
		CallRate           float64 `json:"call_rate"`
		Health             struct {
			Check struct {
				Interval int64 `json:"interval"`
				Fall     int   `json:"fall"`
			} `json:"check"`
			Outlier struct {
				ConsecutiveFailures int `json:"consecutive_failures"`
			} `json:"outlier"`
			Breaker struct {
				MaxConcurrent int `json:"max_concurrent"`
			} `json:"breaker"`
			PanicThreshold float64 `json:"panic_threshold"`
		} `json:"health"`
		Limits struct {
			MaxInflight int `json:"max_inflight"`
		} `json:"limits"`
	} `json:"proxy"`
	Discovery struct {
		Backends []string `json:"backends"`
	} `json:"discovery"`
	Routes []string `json:"routes"`
}

func getConfig(t *testing.T, admin string) liveConfig {
	t.Helper()
	var c liveConfig
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+admin+"/config")), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeConfig writes a config file (atomically: a reload never reads half
// of one) and returns its path.
func writeConfig(t *testing.T, path, text string) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// reloadAndWait writes text, sends SIGHUP and waits for the n-th line of
// the proxy's log that matches done.
func reloadAndWait(t *testing.T, px *proctest.Proc, path, text, done string, n int) {
	t.Helper()
	writeConfig(t, path, text)
	if err := px.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 20*time.Second, fmt.Sprintf("reload %d logged %q", n, done), func() bool {
		return strings.Count(px.Stderr(), done) >= n
	})
}

// cartLoad keeps carts made at the start busy: each worker adds to its
// cart and checks the total it reads back, counting every error.
type cartLoad struct {
	calls, failed atomic.Int64
	mu            sync.Mutex
	firstErr      error
	stop          chan struct{}
	wg            sync.WaitGroup
}

func startCartLoad(t *testing.T, c *client.Conn, carts int) *cartLoad {
	l := &cartLoad{stop: make(chan struct{})}
	for i := 0; i < carts; i++ {
		s := c.NewSession()
		cart, err := s.New(ctxT(t), "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var want int64
			for n := int64(1); ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				_, err := cart.Call(ctxT(t), "AddItem", "x", n)
				if err == nil {
					want += n
					var tr struct {
						Total int64 `cbor:"total"`
					}
					var res *client.Result
					if res, err = cart.Call(ctxT(t), "Total"); err == nil {
						if err = res.Decode(&tr); err == nil && tr.Total != want {
							err = fmt.Errorf("cart total %d, want %d: the session lost state", tr.Total, want)
						}
					}
				}
				l.calls.Add(2)
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = err
					}
					l.mu.Unlock()
					return // a cart that failed once stays failed: stop counting it
				}
			}
		}()
	}
	return l
}

func (l *cartLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// TestReloadUnderLoad (issue 16): a proxy process under mixed load —
// stateless calls, carts that live through the whole test, sessions made
// and dropped all along — gets 10 SIGHUP reloads, each changing something
// real: a gateway added and removed, limits, health settings, routes, the
// log level. No call fails, no connection drops, no session is lost, and
// each change shows in /pool or /config. The gateway added and removed
// (gw3) serves orders@1 only: sessions live on gw1 and gw2, since removing
// a gateway loses the sessions it holds, as its leaving does.
func TestReloadUnderLoad(t *testing.T) {
	gw1, gw2 := startGW(t, "gw1"), startGW(t, "gw2")
	gw3 := startGW(t, "gw3", "--modules", "orders")
	b1 := "tcp://" + gw1.Addr.TCP + "#name=gw1"
	b2 := "tcp://" + gw2.Addr.TCP + "#name=gw2"
	b3 := "tcp://" + gw3.Addr.TCP + "#name=gw3,modules=orders@1"
	path := filepath.Join(t.TempDir(), "graftlb.yaml")
	base := fmt.Sprintf("backend: [%q, %q]\n", b1, b2)
	// No --log-level on the command line: it would win over the file's.
	px := proctest.Start(t, "proxy", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--log-format", "json", "--config", writeConfig(t, path, base))
	admin := px.Addr.Admin

	c := dialT(t, "tcp://"+px.Addr.TCP)
	stateless := startStatelessLoad(t, c, 4, false)
	carts := startCartLoad(t, c, 6)
	churn := startSessionLoad(t, c, 2, 4, 0)
	stateless.waitOK(t, 200)

	steps := []struct {
		what, file string
		check      func(liveConfig, map[string]string) error
	}{
		{"add gw3", fmt.Sprintf("backend: [%q, %q, %q]\n", b1, b2, b3), func(_ liveConfig, pool map[string]string) error {
			if pool["gw3"] != "ready" {
				return fmt.Errorf("pool %v: gw3 not ready", pool)
			}
			return nil
		}},
		{"max-conns", fmt.Sprintf("backend: [%q, %q, %q]\nmax-conns: 5000\nmax-inflight: 512\n", b1, b2, b3), func(c liveConfig, _ map[string]string) error {
			if c.Proxy.MaxConns != 5000 || c.Proxy.Limits.MaxInflight != 512 {
				return fmt.Errorf("max_conns %d, max_inflight %d", c.Proxy.MaxConns, c.Proxy.Limits.MaxInflight)
			}
			return nil
		}},
		{"health checks", fmt.Sprintf("backend: [%q, %q, %q]\nmax-conns: 5000\ncheck-interval: 500ms\nfall: 5\n", b1, b2, b3), func(c liveConfig, _ map[string]string) error {
			if c.Proxy.Health.Check.Interval != int64(500*time.Millisecond) || c.Proxy.Health.Check.Fall != 5 {
				return fmt.Errorf("check %+v", c.Proxy.Health.Check)
			}
			return nil
		}},
		{"call timeout, retries", fmt.Sprintf("backend: [%q, %q, %q]\ncall-timeout: 20s\nretry-budget: 0.3\n", b1, b2, b3), func(c liveConfig, _ map[string]string) error {
			if c.Proxy.CallTimeout != int64(20*time.Second) || c.Proxy.RetryBudget != 0.3 || c.Proxy.MaxConns != 10000 {
				return fmt.Errorf("call_timeout %d, retry_budget %v, max_conns %d (back to the default)", c.Proxy.CallTimeout, c.Proxy.RetryBudget, c.Proxy.MaxConns)
			}
			return nil
		}},
		{"remove gw3", fmt.Sprintf("backend: [%q, %q]\ncall-timeout: 20s\n", b1, b2), func(_ liveConfig, pool map[string]string) error {
			if _, ok := pool["gw3"]; ok || len(pool) != 2 {
				return fmt.Errorf("pool %v still has gw3", pool)
			}
			return nil
		}},
		{"session caps", base + "max-sessions: 500000\nmax-sessions-per-conn: 50000\ncall-rate: 100000\n", func(c liveConfig, _ map[string]string) error {
			if c.Proxy.MaxSessions != 500000 || c.Proxy.MaxSessionsPerConn != 50000 || c.Proxy.CallRate != 100000 {
				return fmt.Errorf("max_sessions %d, per conn %d, call_rate %v", c.Proxy.MaxSessions, c.Proxy.MaxSessionsPerConn, c.Proxy.CallRate)
			}
			return nil
		}},
		{"breakers, outliers, panic", base + "breaker-max-concurrent: 2048\neject-consecutive: 7\npanic-threshold: 0.3\n", func(c liveConfig, _ map[string]string) error {
			h := c.Proxy.Health
			if h.Breaker.MaxConcurrent != 2048 || h.Outlier.ConsecutiveFailures != 7 || h.PanicThreshold != 0.3 {
				return fmt.Errorf("health %+v", h)
			}
			return nil
		}},
		{"route", base + "route: [orders@1=direct, cart@1=direct]\n", func(c liveConfig, _ map[string]string) error {
			if strings.Join(c.Routes, " ") != "orders@1=direct cart@1=direct" {
				return fmt.Errorf("routes %q", c.Routes)
			}
			return nil
		}},
		{"gw3 back, weighted", fmt.Sprintf("backend: [%q, %q, %q]\n", b1, b2, b3+",weight=3"), func(c liveConfig, pool map[string]string) error {
			if pool["gw3"] != "ready" || !strings.Contains(strings.Join(c.Discovery.Backends, " "), "weight=3") {
				return fmt.Errorf("pool %v, backends %q", pool, c.Discovery.Backends)
			}
			return nil
		}},
		{"log level, session idle, and a name it refuses", fmt.Sprintf("backend: [%q, %q, %q]\nlog-level: warn\nsession-idle: 10m\nname: renamed\n", b1, b2, b3), func(c liveConfig, _ map[string]string) error {
			if c.Proxy.SessionIdle != int64(10*time.Minute) || c.Proxy.Name != "graftlb" {
				return fmt.Errorf("session_idle %d, name %q (must stay)", c.Proxy.SessionIdle, c.Proxy.Name)
			}
			if !regexp.MustCompile(`"not_reloaded":\["name"\]`).MatchString(px.Stderr()) {
				return errors.New("no warning naming --name")
			}
			return nil
		}},
	}
	for i, s := range steps {
		reloadAndWait(t, px, path, s.file, "SIGHUP: configuration reloaded", i+1)
		var err error
		deadline := time.Now().Add(10 * time.Second)
		for err = s.check(getConfig(t, admin), poolStates(t, admin)); err != nil && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			err = s.check(getConfig(t, admin), poolStates(t, admin))
		}
		if err != nil {
			t.Fatalf("reload %d (%s): %v", i+1, s.what, err)
		}
		stateless.waitOK(t, 50) // calls go on between reloads
	}
	// At warn, an 11th SIGHUP logs its (warn) refusal of --name but no
	// longer the info line each reload begins with.
	reloadAndWait(t, px, path, steps[len(steps)-1].file, "SIGHUP: configuration reloaded", len(steps)+1)
	if n := strings.Count(px.Stderr(), "SIGHUP: reloading"); n != len(steps) {
		t.Errorf("%d info lines \"SIGHUP: reloading\" after log-level: warn, want %d", n, len(steps))
	}
	stateless.halt()
	carts.halt()
	close(churn.stop)
	churn.wg.Wait()
	select {
	case <-c.Done():
		t.Fatalf("the client connection dropped: %v", c.Err())
	default:
	}
	t.Logf("10 reloads: %d stateless calls ok, %d failed (%v); %d cart calls, %d failed; %d sessions churned, %d lost, %d failed",
		stateless.ok.Load(), stateless.failed(), stateless.failures, carts.calls.Load(), carts.failed.Load(),
		churn.verified.Load(), churn.lost.Load(), churn.failed.Load()+churn.misrouted.Load())
	if stateless.failed() != 0 || carts.failed.Load() != 0 || churn.lost.Load() != 0 || churn.failed.Load() != 0 || churn.misrouted.Load() != 0 {
		t.Fatalf("failures under reloads: stateless %v, carts %d (first %v), sessions lost %d, failed %d (first %v)",
			stateless.failures, carts.failed.Load(), carts.firstErr, churn.lost.Load(), churn.failed.Load(), churn.firstErr)
	}
	if stateless.served["gw3"] == 0 {
		t.Error("gw3 served no stateless call while in the pool")
	}
	if n := strings.Count(px.Stderr(), "reload failed"); n != 0 {
		t.Errorf("%d reloads failed", n)
	}
}

// TestReloadBadFileKeepsConfig: a reload of a file that does not parse, or
// that names an unknown key, or holds a bad value, is logged with the
// line and changes nothing; the proxy keeps serving, and the next good
// file applies.
func TestReloadBadFileKeepsConfig(t *testing.T) {
	gw := startGW(t, "gw1")
	path := filepath.Join(t.TempDir(), "graftlb.yaml")
	good := fmt.Sprintf("backend: [tcp://%s#name=gw1]\nmax-conns: 4000\n", gw.Addr.TCP)
	px := startProxyProc(t, "--config", writeConfig(t, path, good))
	for i, bad := range []string{
		good + "max-conn: 5\n",                  // unknown key
		good + "retry-budget: 2\n",              // Validate refuses it
		"backend: [tcp://" + gw.Addr.TCP + "\n", // YAML error
		"backend: [nosuchscheme://x:1]\nmax-conns: 1\n",
	} {
		reloadAndWait(t, px, path, bad, "reload failed", i+1)
		if c := getConfig(t, px.Addr.Admin); c.Proxy.MaxConns != 4000 || len(c.Discovery.Backends) != 1 {
			t.Fatalf("bad file %d changed the config: max_conns %d, backends %v", i+1, c.Proxy.MaxConns, c.Discovery.Backends)
		}
	}
	if !strings.Contains(px.Stderr(), `graftlb.yaml:3: unknown key \"max-conn\"`) {
		t.Errorf("the unknown key's error names no line:\n%s", px.StderrTail(20))
	}
	c := dialT(t, "tcp://"+px.Addr.TCP)
	if _, err := c.Session().CallStateless(ctxT(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("a call after the bad reloads: %v", err)
	}
	reloadAndWait(t, px, path, strings.Replace(good, "4000", "4500", 1), "SIGHUP: configuration reloaded", 1)
	if c := getConfig(t, px.Addr.Admin); c.Proxy.MaxConns != 4500 {
		t.Fatalf("the good file after the bad ones: max_conns %d", c.Proxy.MaxConns)
	}
}

// TestConfigFileAndFlags: the file sets what the command line does not,
// the command line wins where both do, and the gateway takes a file too.
func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	gpath := writeConfig(t, filepath.Join(dir, "gw.yaml"), "name: from-file\nmodules: orders\n")
	gw := proctest.Start(t, "gateway", "--config", gpath, "--tcp", "127.0.0.1:0", "--ws", "", "--http", "")
	if gw.Addr.Name != "from-file" {
		t.Errorf("gateway name %q, want the file's", gw.Addr.Name)
	}
	path := writeConfig(t, filepath.Join(dir, "px.yaml"), fmt.Sprintf("backend: [tcp://%s#name=gw1]\nmax-conns: 4000\nmax-sessions: 7000\n", gw.Addr.TCP))
	px := startProxyProc(t, "--config", path, "--max-conns", "3000")
	c := getConfig(t, px.Addr.Admin)
	if c.Proxy.MaxConns != 3000 || c.Proxy.MaxSessions != 7000 {
		t.Errorf("max_conns %d (flag 3000 over file 4000), max_sessions %d (file 7000)", c.Proxy.MaxConns, c.Proxy.MaxSessions)
	}
	// A reload keeps the command line on top of the new file.
	reloadAndWait(t, px, path, fmt.Sprintf("backend: [tcp://%s#name=gw1]\nmax-conns: 4100\nmax-sessions: 7100\n", gw.Addr.TCP), "SIGHUP: configuration reloaded", 1)
	if c := getConfig(t, px.Addr.Admin); c.Proxy.MaxConns != 3000 || c.Proxy.MaxSessions != 7100 {
		t.Errorf("after the reload: max_conns %d (flag 3000), max_sessions %d (file 7100)", c.Proxy.MaxConns, c.Proxy.MaxSessions)
	}
	// The gateway's SIGHUP reads its file again and refuses what it cannot change.
	writeConfig(t, gpath, "name: renamed\nmodules: orders\nlog-level: warn\n")
	if err := gw.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 10*time.Second, "the gateway's reload", func() bool {
		return strings.Contains(gw.Stderr(), `"not_reloaded":["name"]`)
	})
}

// TestCheckConfig: --check-config exits 0 for a valid configuration and 1
// for each kind of error, with a message that names it, binding nothing.
func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bin := proctest.Binary(t)
	run := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	file := func(name, text string) string { return writeConfig(t, filepath.Join(dir, name), text) }
	valid := file("ok.yaml", "backend: [tcp://127.0.0.1:8990#name=gw1]\ntcp: 127.0.0.1:1\nmax-conns: 10\ncheck-interval: 2s\n")
	if code, out := run("proxy", "--config", valid, "--check-config"); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("a valid config: exit %d: %s", code, out)
	}
	for _, c := range []struct{ text, want string }{
		{"backend: [tcp://a:1]\nmax-con: 5\n", `bad.yaml:2: unknown key "max-con"`},
		{"backend: [tcp://a:1]\nmax-conns: lots\n", `bad.yaml:2: key "max-conns": invalid value "lots"`},
		{"backend: [ftp://a:1]\n", `scheme "ftp"`},
		{"backend: [tcp://a:1]\nretry-budget: 3\n", "retry_budget"},
		{"backend: [tcp://a:1]\ntcp: 127.0.0.1\n", "--tcp"},
		{"backend: [tcp://a:1]\npanic-threshold: 2\n", "panic_threshold"},
		{"max-conns: 5\n", "give exactly one pool source"},
		{"backend: [tcp://a:1]\nroute: [orders@1=nats:queue]\n", "--nats"},
	} {
		code, out := run("proxy", "--config", file("bad.yaml", c.text), "--check-config")
		if code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%q: exit %d, want 1 and %q in:\n%s", c.text, code, c.want, out)
		}
	}
	if code, out := run("gateway", "--config", file("gw.yaml", "workers: 4\n"), "--check-config"); code != 0 {
		t.Errorf("a valid gateway config: exit %d: %s", code, out)
	}
	if code, out := run("gateway", "--config", file("gw.yaml", "workers: 4\nbackend: x\n"), "--check-config"); code != 1 || !strings.Contains(out, `unknown key "backend"`) {
		t.Errorf("a gateway config with a proxy key: exit %d: %s", code, out)
	}
}

// TestREADMEConfigExample: the complete example config file of the
// README's Configuration section is one --check-config accepts, so that
// it stays true as flags change.
func TestREADMEConfigExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(# graftlb proxy --config.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no example config file (a yaml block starting with # graftlb proxy --config)")
	}
	if keys := regexp.MustCompile(`(?m)^[a-z-]+:`).FindAll(m[1], -1); len(keys) < 30 {
		t.Errorf("the example has %d keys; it is meant to be complete", len(keys))
	}
	path := writeConfig(t, filepath.Join(t.TempDir(), "graftlb.yaml"), string(m[1]))
	out, err := exec.Command(proctest.Binary(t), "proxy", "--config", path, "--check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Fatalf("--check-config of the README's example: %v: %s", err, out)
	}
}
