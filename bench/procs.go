package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a process may take to say where it listens.
const startTimeout = 20 * time.Second

// Listening is the JSON line a graftlb command prints on stdout at start
// (DESIGN.md section 6).
type Listening struct {
	Event  string `json:"event"`
	Name   string `json:"name"`
	TCP    string `json:"tcp"`
	WS     string `json:"ws"`
	HTTP   string `json:"http"`
	Admin  string `json:"admin"`
	Gossip string `json:"gossip"`
}

// Proc is a process a scenario started. Kill it when done: Kill waits for
// the exit. If the bench dies first, the kernel kills it (PR_SET_PDEATHSIG).
type Proc struct {
	// Name is the gateway's name, "graftlb" or "haproxy".
	Name string
	// Addr is what the process listens on.
	Addr Listening

	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's, once done is closed
}

// StartGraftlb runs `bin args...` (a graftlb command) and waits for its
// listening line.
func StartGraftlb(ctx context.Context, bin, name string, args ...string) (*Proc, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, bin, args, pw)
	_ = pw.Close() // the child has its copy
	if err != nil {
		_ = pr.Close()
		return nil, err
	}
	lines := make(chan string, 1)
	go func() { // ends at the child's exit, when its stdout closes
		defer pr.Close()
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	var line string
	select {
	case line = <-lines:
	case <-t.C:
		p.Kill()
		return nil, fmt.Errorf("bench: %s: no listening line within %v; stderr:\n%s", name, startTimeout, p.Stderr())
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
	if err := json.Unmarshal([]byte(line), &p.Addr); err != nil || p.Addr.Event != "listening" {
		p.Kill()
		return nil, fmt.Errorf("bench: %s: expected a listening line, got %q; stderr:\n%s", name, line, p.Stderr())
	}
	return p, nil
}

// startProc starts path with args, stdout to out (nil: discarded), stderr
// kept (the tail) for error messages.
func startProc(name, path string, args []string, out *os.File) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = procAttr()
	p := &Proc{Name: name, cmd: cmd, stderr: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	if out != nil {
		cmd.Stdout = out
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() { // ends at the exit
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("bench: signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill SIGKILLs the process (if it still runs) and waits for its exit.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPU returns the CPU time (user + system) the process has used so far,
// from /proc/PID/stat.
func (p *Proc) CPU() (time.Duration, error) { return cpuTime(p.PID()) }

// Stderr returns the last 16 KiB the process wrote to stderr.
func (p *Proc) Stderr() string { return p.stderr.String() }

// killAll kills every process and waits for them.
func killAll(ps []*Proc) {
	for _, p := range ps {
		if p != nil {
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range ps {
		if p != nil {
			<-p.done
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// freePort returns a loopback address with a port nobody listens on now,
// for programs that cannot take port 0 and report it (HAProxy).
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitDial waits until addr accepts a TCP connection, p exits, or d passes.
func waitDial(ctx context.Context, p *Proc, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if p.Exited() {
			return fmt.Errorf("bench: %s exited before listening on %s: %v; stderr:\n%s", p.Name, addr, p.err, p.Stderr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not listening on %s after %v: %w", p.Name, addr, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
