// Package proctest runs graftlb commands as real processes for end-to-end
// tests: it builds the binary once, starts commands with port 0 listeners,
// reads the "listening" JSON line they print, and stops them with real
// signals.
package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a graftlb binary built from this checkout,
// building it on first use (once per test process).
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "graftlb-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "graftlb")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/graftlb")
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Listening is the JSON line a long-running command prints at start.
type Listening struct {
	Event  string `json:"event"`
	Name   string `json:"name"`
	TCP    string `json:"tcp"`
	WS     string `json:"ws"`
	HTTP   string `json:"http"`
	Admin  string `json:"admin"`
	Gossip string `json:"gossip"`
}

// Proc is a running graftlb process.
type Proc struct {
	Cmd  *exec.Cmd
	Addr Listening
	// Stderr collects the process's logs.
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// Start runs graftlb with args, waits for its listening line, and stops the
// process (SIGKILL) when the test ends if it is still running.
func Start(tb testing.TB, args ...string) *Proc {
	tb.Helper()
	cmd := exec.Command(Binary(tb), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proc{Cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if tb.Failed() {
			tb.Logf("stderr of %v:\n%s", args, p.Stderr())
		}
	})
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &p.Addr); err != nil || p.Addr.Event != "listening" {
			<-p.done
			tb.Fatalf("graftlb %s: no listening line (got %q, err %v); stderr:\n%s",
				strings.Join(args, " "), line, err, p.Stderr())
		}
	case <-time.After(30 * time.Second):
		tb.Fatalf("graftlb %s: no listening line within 30s; stderr:\n%s", strings.Join(args, " "), p.Stderr())
	}
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to d for the process to exit and returns its exit code
// (-1 if killed by a signal); ok is false on timeout.
func (p *Proc) Wait(d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Eventually polls cond every 10ms until it is true or d passes.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
