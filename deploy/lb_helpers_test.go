package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/proctest"
)

// lockedBuffer is a bytes.Buffer for a child's output, read while written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is a running haproxy or nginx.
type server struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

// startServer runs a server in the foreground, stopped with SIGTERM (then
// SIGKILL) when the test ends.
func startServer(t *testing.T, path string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(path, args...), out: &lockedBuffer{}}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(path), s.out.String())
		}
	})
	return s
}

// sbin finds a server binary on the PATH or in /usr/sbin.
func sbin(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; fileExists(p) {
		return p
	}
	t.Fatalf("%s is not installed (scripts/deps.txt lists %s)", name, pkg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// render replaces each example address of a config with a real one,
// failing if an example is missing (the config and the test disagree).
func render(t *testing.T, path string, repl map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for from, to := range repl {
		if !strings.Contains(s, from) {
			t.Fatalf("%s has no %q", path, from)
		}
		s = strings.ReplaceAll(s, from, to)
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// startGateway runs a graftlb gateway on loopback, port-0 listeners.
func startGateway(t *testing.T, name string) *proctest.Proc {
	return proctest.Start(t, "gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--log-format", "json")
}

// startProxy runs a graftlb proxy in front of gws.
func startProxy(t *testing.T, name string, gws ...*proctest.Proc) *proctest.Proc {
	args := []string{"proxy", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "127.0.0.1:0", "--log-format", "json"}
	for _, g := range gws {
		args = append(args, "--backend", "tcp://"+g.Addr.TCP+"#name="+g.Addr.Name)
	}
	return proctest.Start(t, args...)
}

var plainHTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func httpGet(url string) (int, []byte, error) {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// readyPath is the proxy's readiness path the L4 configs check: /readyz,
// or /healthz while the proxy has no /readyz yet (it answers 404).
func readyPath(t *testing.T, admin string) string {
	t.Helper()
	code, _, err := httpGet("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusNotFound {
		t.Logf("the proxy has no /readyz yet (404): checking /healthz instead")
		return "/healthz"
	}
	return "/readyz"
}

// proxyConns reads a proxy's client connection count from /stats.
func proxyConns(t *testing.T, admin string) int64 {
	t.Helper()
	_, b, err := httpGet("http://" + admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Conns int64 `json:"conns"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("/stats: %v: %s", err, b)
	}
	return st.Conns
}

// callOnce dials target, makes one stateless call and returns the name of
// the gateway that ran it.
func callOnce(target string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, target, client.Options{DialTimeout: 3 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return callOn(ctx, c)
}

func callOn(ctx context.Context, c *client.Conn) (string, error) {
	res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
	if err != nil {
		return "", err
	}
	var o orders.Order
	if err := res.Decode(&o); err != nil {
		return "", err
	}
	if o != orders.Make("o-1", o.Gateway) {
		return "", fmt.Errorf("wrong order %+v", o)
	}
	return o.Gateway, nil
}
