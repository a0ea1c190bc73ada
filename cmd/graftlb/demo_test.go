package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestDemo runs `graftlb demo`, shortened, as a real process, as a
// newcomer would, and checks that it passes and that its summary shows
// each step's expected outcome.
func TestDemo(t *testing.T) {
	d := startDemo(t, "--gateways", "3", "--duration", "15s")
	code := d.wait(t, 90*time.Second)
	out := d.output()
	if code != 0 {
		t.Fatalf("demo exit code %d, want 0", code)
	}
	for _, want := range []string{
		// 1: one connection reaches every gateway.
		`(?m)^ +ok +every gateway served calls from the one connection: 3 of 3$`,
		`(?m)^ +1 stateless spread +[\d,]+ +[\d,]+ +[\d,]+ +0 +-$`,
		// 2: carts verified on their owners.
		`(?m)^ +ok +every long-lived cart read back exactly from its owner: 30 of 30$`,
		`(?m)^ +2 stateful carts +[\d,]+ +[\d,]+ +[\d,]+ +0 +[1-9][\d,]*/0/0$`,
		// 3: gw4 joins and gets new work; the old carts stay.
		`(?m)^ +ok +stateless calls reach gw4: `,
		`(?m)^ +ok +new sessions are placed on gw4: `,
		`(?m)^ +ok +existing carts stayed on their owners, contents intact: 30 of 30$`,
		`(?m)^ +3 gw4 joins +[\d,]+ +[\d,]+ +[\d,]+ +0 +[1-9][\d,]*/0/0$`,
		// 4: a drain hands its sessions over, without a failed call.
		`(?m)^ +ok +zero failed calls: `,
		`(?m)^ +ok +its carts moved and read back exactly: (\d+) of (\d+)$`,
		`(?m)^ +ok +gw\d handed its sessions over, lost none: [1-9][\d,]* moved, 0 lost$`,
		`(?m)^ +[\d.]+s gw\d handed [1-9][\d,]* sessions? over \(gw\d [\d,]+, `,
		`(?m)^ +ok +gw\d exited 0 within seconds of SIGTERM`,
		`(?m)^ +4 drain gw\d +[\d,]+ +[\d,]+ +[\d,]+ +0 +[1-9][\d,]*/0/0$`,
		// 5: a kill loses exactly the victim's sessions.
		`(?m)^ +ok +every cart on gw\d got SESSION_LOST: ([1-9]\d*) of ([1-9]\d*)$`,
		`(?m)^ +ok +only gw\d's sessions were lost: `,
		`(?m)^ +ok +everything else unaffected: `,
		`(?m)^ +5 kill gw\d +[\d,]+ +[\d,]+ +[\d,]+ +SESSION_LOST [1-9][\d,]* +[\d,]+/[1-9][\d,]*/0$`,
		// 6: calls routed through NATS.
		`(?m)^ +ok +queue calls ran on every subscribed gateway, none failed: 3 of 3 gateways, 0 failed$`,
		`(?m)^ +ok +one fan-out call reached every gateway once: 3 answers from 3 gateways$`,
		`(?m)^ +6 NATS transport +[\d,]+ +[\d,]+ +[\d,]+ +0 +`,
		// 7: the summary.
		`(?m)^  dashboard while it ran: http://127\.0\.0\.1:\d+/ \(metrics /metrics, JSON /pool and /stats\)$`,
		// The dashboard's address comes before the first step.
		`(?s)^.*  dashboard: http://127\.0\.0\.1:\d+/\n.*1/6`,
		`PASS: all \d+ checks of the 6 steps held\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s", want)
		}
	}
	// The drained gateway exited already, the killed one is dead; the rest
	// stop on SIGTERM in time.
	if m := regexp.MustCompile(`(?m)^ +[\d.]+s stopped: (.*)$`).FindStringSubmatch(out); m == nil ||
		strings.Count(m[1], "exit 0") != 4 || strings.Count(m[1], " killed") != 1 {
		t.Errorf("children did not end as they should: %q", m)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("output to a pipe has ANSI escapes")
	}
	d.checkChildrenGone(t)
}

// TestDemoInterrupted sends SIGINT (Ctrl-C) during the first step: the demo
// stops its children, prints what it measured and exits 130.
func TestDemoInterrupted(t *testing.T) {
	d := startDemo(t, "--gateways", "3", "--duration", "10s")
	d.waitFor(t, "[1/6]")
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := d.wait(t, 30*time.Second)
	out := d.output()
	if code != 130 || !strings.Contains(out, "INTERRUPTED during step 1 of 6") || !strings.Contains(out, "1 stateless spread") {
		t.Fatalf("exit code %d, want 130 and a summary", code)
	}
	if !regexp.MustCompile(`(?m)^ +[\d.]+s stopped: proxy exit 0, gw1 exit 0, gw2 exit 0, gw3 exit 0$`).MatchString(out) {
		t.Error("the children did not all exit 0 on SIGTERM")
	}
	d.checkChildrenGone(t)
}

// demoProc is a running `graftlb demo`.
type demoProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{} // closed when stdout is read to its end

	mu    sync.Mutex
	lines []string
	seen  chan struct{} // signalled on every new line
}

func startDemo(t *testing.T, args ...string) *demoProc {
	t.Helper()
	d := &demoProc{done: make(chan struct{}), seen: make(chan struct{}, 1)}
	d.cmd = exec.Command(proctest.Binary(t), append([]string{"demo"}, args...)...)
	d.cmd.Stderr = &d.stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
			select {
			case d.seen <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		_ = d.cmd.Wait()
		if t.Failed() {
			t.Logf("demo output:\n%s\nstderr:\n%s", d.output(), d.stderr.String())
		}
	})
	return d
}

// waitFor waits until a line containing s has been printed.
func (d *demoProc) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(d.output(), s) {
		select {
		case <-d.seen:
		case <-d.done:
			t.Fatalf("demo ended before printing %q; output:\n%s\nstderr:\n%s", s, d.output(), d.stderr.String())
		case <-deadline:
			t.Fatalf("demo printed no %q within 30s; output:\n%s", s, d.output())
		}
	}
}

// wait waits for the demo to exit and returns its exit code (-1 if killed
// by a signal).
func (d *demoProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	select {
	case <-d.done:
	case <-ctx.Done():
		_ = d.cmd.Process.Kill()
		<-d.done
		_ = d.cmd.Wait()
		t.Fatalf("demo still running after %v; output:\n%s", within, d.output())
	}
	err := d.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return d.cmd.ProcessState.ExitCode()
}

func (d *demoProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n") + "\n"
}

// checkChildrenGone checks that every process the demo said it started
// (the "pid N" of its address lines) has exited.
func (d *demoProc) checkChildrenGone(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	ms := regexp.MustCompile(`(?m)^  (\S+) +pid (\d+) `).FindAllStringSubmatch(d.output(), -1)
	if len(ms) < 4 {
		t.Fatalf("found %d child pids in the output, want at least 4", len(ms))
	}
	for _, m := range ms {
		pid, _ := strconv.Atoi(m[2])
		proctest.Eventually(t, 5*time.Second, m[1]+" (pid "+m[2]+") to exit", func() bool { return !running(pid) })
	}
}

// running reports whether pid is a process that has not exited (a zombie
// waiting for its parent to reap it counts as exited).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ...": a pid reused by another program is not ours.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || !bytes.Contains(b[:i], []byte("(graftlb")) {
		return false
	}
	st := b[i+2]
	return st != 'Z' && st != 'X' && syscall.Kill(pid, 0) == nil
}
