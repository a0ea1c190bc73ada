// Package proctest runs graftlb commands as real processes for end-to-end
// tests: it builds the binary once, starts commands with port 0 listeners,
// reads the "listening" JSON line they print, and stops them with real
// signals.
package proctest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/child"
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
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", binPath, "./cmd/graftlb")
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

// Cleanup removes the binary Binary built and exits with code: pass it to
// goleak.VerifyTestMain as goleak.Cleanup(proctest.Cleanup), so that test
// runs leave no 30 MB binaries behind in the temporary directory.
func Cleanup(code int) {
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Listening is the JSON line a long-running command prints at start.
type Listening = child.Listening

// Proc is a running graftlb process.
type Proc struct {
	*child.Proc
}

// Start runs graftlb with args, waits for its listening line, and stops the
// process (SIGKILL) when the test ends if it is still running; the test's
// log then shows its stderr if the test failed.
func Start(tb testing.TB, args ...string) *Proc {
	tb.Helper()
	return StartEnv(tb, nil, args...)
}

// StartEnv is Start with the environment env (nil: this process's).
func StartEnv(tb testing.TB, env []string, args ...string) *Proc {
	tb.Helper()
	name := strings.Join(args, " ")
	p, err := child.Start(context.Background(), name, Binary(tb), args, child.Options{Env: env, ListenTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("stderr of graftlb %s:\n%s", name, p.Stderr())
		}
	})
	return &Proc{p}
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
