package discovery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines with no exception: tests that run
// memberlist wait for its goroutines to end (awaitMemberlistExit), and so
// does TestMain after the examples, which cannot.
func TestMain(m *testing.M) {
	code := m.Run()
	deadline := time.Now().Add(20 * time.Second)
	for len(memberlistGoroutines()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: errors on successful test run:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// awaitMemberlistExit registers a cleanup, to run after every cleanup
// registered later (the nodes' Shutdown), that waits until no goroutine of
// memberlist is left. memberlist.Shutdown returns while a probe in flight
// still waits out its probe interval (up to 8 s when the node's awareness
// score has backed it off), so its goroutines end a little after Shutdown.
func awaitMemberlistExit(tb testing.TB) {
	tb.Helper()
	tb.Cleanup(func() {
		took := waitFor(tb, 20*time.Second, "memberlist goroutines to end after Shutdown", func() bool {
			return len(memberlistGoroutines()) == 0
		})
		if took > 100*time.Millisecond {
			tb.Logf("memberlist goroutines outlived Shutdown by %v", took.Round(time.Millisecond))
		}
	})
}

func memberlistGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/hashicorp/memberlist.") {
			out = append(out, g)
		}
	}
	return out
}

// waitFor polls cond every 2 ms until it holds, and fails the test after
// timeout. It returns how long cond took to hold.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
	return time.Since(start)
}

func ptr[T any](v T) *T { return &v }

// logBuffer collects zerolog's JSON lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// entries returns the log lines decoded as JSON objects.
func (b *logBuffer) entries() []map[string]any {
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// find returns the first entry whose fields include every key/value of want.
func (b *logBuffer) find(want map[string]string) (map[string]any, bool) {
	for _, e := range b.entries() {
		ok := true
		for k, v := range want {
			if s, _ := e[k].(string); s != v {
				ok = false
				break
			}
		}
		if ok {
			return e, true
		}
	}
	return nil, false
}
