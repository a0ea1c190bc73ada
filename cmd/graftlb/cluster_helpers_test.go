package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// newKey returns a fresh gossip key.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startGW runs `graftlb gateway` named name on port-0 listeners.
func startGW(t *testing.T, name string, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"gateway", "--name", name, "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}, extra...)
	return proctest.Start(t, args...)
}

// startProxyProc runs `graftlb proxy` on port-0 listeners.
func startProxyProc(t *testing.T, extra ...string) *proctest.Proc {
	t.Helper()
	args := append([]string{"proxy", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "info"}, extra...)
	return proctest.Start(t, args...)
}

func dialT(t *testing.T, target string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), target, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poolMember is the part of GET /pool the tests read.
type poolMember struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Sessions int64  `json:"sessions"`
	InFlight int64  `json:"in_flight"`
}

func getPool(t *testing.T, admin string) []poolMember {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/pool")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var pool []poolMember
	if err := json.Unmarshal(b, &pool); err != nil {
		t.Fatalf("/pool: %v: %s", err, b)
	}
	return pool
}

// poolStates maps gateway name to state as the proxy sees it.
func poolStates(t *testing.T, admin string) map[string]string {
	m := map[string]string{}
	for _, p := range getPool(t, admin) {
		m[p.Name] = p.State
	}
	return m
}

// statelessLoad runs workers that call GetOrder through c until stopped,
// counting successes per gateway and failures by code.
type statelessLoad struct {
	mu       sync.Mutex
	served   map[string]int
	firstAt  map[string]time.Time
	failures map[string]int
	ok       atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startStatelessLoad(t *testing.T, c *client.Conn, workers int, idempotent bool) *statelessLoad {
	l := &statelessLoad{served: map[string]int{}, firstAt: map[string]time.Time{}, failures: map[string]int{}, stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			s := c.Session()
			req := client.Request{Target: protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"},
				Stateless: true, Idempotent: idempotent}
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("o-%d-%d", w, i)
				req.Args = []any{id}
				res, err := s.Do(ctxT(t), req)
				var o orders.Order
				if err == nil {
					err = res.Decode(&o)
				}
				if err == nil && o != orders.Make(id, o.Gateway) {
					err = fmt.Errorf("wrong order %+v", o)
				}
				l.mu.Lock()
				if err != nil {
					code := "other"
					var pe *protocol.Error
					if errors.As(err, &pe) {
						code = pe.Code.String()
					}
					l.failures[code]++
				} else {
					l.served[o.Gateway]++
					if _, ok := l.firstAt[o.Gateway]; !ok {
						l.firstAt[o.Gateway] = time.Now()
					}
				}
				l.mu.Unlock()
				if err == nil {
					l.ok.Add(1)
				}
			}
		}(w)
	}
	return l
}

func (l *statelessLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *statelessLoad) failed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.failures {
		n += v
	}
	return n
}

func (l *statelessLoad) first(gw string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.firstAt[gw]
	return at, ok
}

// waitOK waits until the load made n more successful calls.
func (l *statelessLoad) waitOK(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	proctest.Eventually(t, 20*time.Second, "load to make progress", func() bool { return l.ok.Load() >= target })
}

func envWith(kv ...string) []string { return append(os.Environ(), kv...) }
