// Package child runs graftlb commands (and other servers, such as haproxy)
// as child processes: it reads the one JSON line a graftlb command prints
// at start with its bound addresses (DESIGN.md section 6), keeps the tail
// of the child's stderr for error messages, has the kernel kill the child
// if the parent dies (Linux), and stops it with real signals. The bench's
// scenarios, the demo and the end-to-end tests all start their processes
// through it.
package child

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listening is the JSON line a long-running graftlb command prints on
// stdout at start: {"event":"listening","name":"gw1","tcp":"127.0.0.1:41234",...}.
// A proxy says admin for its admin address.
type Listening struct {
	Event  string `json:"event"`
	Name   string `json:"name,omitempty"`
	TCP    string `json:"tcp,omitempty"`
	WS     string `json:"ws,omitempty"`
	HTTP   string `json:"http,omitempty"`
	Admin  string `json:"admin,omitempty"`
	Gossip string `json:"gossip,omitempty"`
	NATS   string `json:"nats,omitempty"`
}

// Options configure a child.
type Options struct {
	// Env is the child's environment (nil: the parent's).
	Env []string
	// OwnGroup puts the child in a process group of its own, so that a
	// Ctrl-C in the terminal reaches only the parent, which then stops its
	// children in order.
	OwnGroup bool
	// Stderr, if set, also receives everything the child writes to its
	// stderr (the last part is kept for Stderr and StderrTail either way).
	// Writes to it must not block for long: they hold up the child.
	Stderr io.Writer
	// ListenTimeout bounds the wait for the listening line (default 20s).
	ListenTimeout time.Duration
	// DeathSignal is what the kernel sends the child when the parent dies
	// (Linux; default SIGKILL). A server whose workers outlive a killed
	// master, such as nginx, wants SIGTERM: its master then stops them.
	DeathSignal syscall.Signal
}

// stderrTail is how much of a child's stderr is kept.
const stderrTail = 16 << 10

// Proc is a running child.
type Proc struct {
	// Name names the child in messages ("gw1", "graftlb", "haproxy").
	Name string
	// Addr is what the child said it listens on (Start only).
	Addr Listening

	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed once the child has exited and been reaped
	forced atomic.Bool   // Stop had to SIGKILL it
}

// Start runs `bin args...`, a graftlb command, and waits for its listening
// line. On any error the child is killed.
func Start(ctx context.Context, name, bin string, args []string, o Options) (*Proc, error) {
	line := &firstLine{ch: make(chan []byte, 1)}
	p, err := start(name, bin, args, o, line)
	if err != nil {
		return nil, err
	}
	wait := o.ListenTimeout
	if wait <= 0 {
		wait = 20 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case b := <-line.ch:
		if err := json.Unmarshal(b, &p.Addr); err != nil || p.Addr.Event != "listening" {
			p.Kill()
			return nil, fmt.Errorf("child: %s printed %q, not its listening line; stderr:\n%s", name, b, p.Stderr())
		}
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("child: %s exited with code %d before listening; stderr:\n%s", name, p.ExitCode(), p.Stderr())
	case <-t.C:
		p.Kill()
		return nil, fmt.Errorf("child: %s printed no listening line within %v; stderr:\n%s", name, wait, p.Stderr())
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// Run runs path with args, a server that prints no listening line; its
// stdout is discarded.
func Run(name, path string, args []string, o Options) (*Proc, error) {
	return start(name, path, args, o, nil)
}

func start(name, path string, args []string, o Options, stdout *firstLine) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = o.Env
	cmd.SysProcAttr = sysProcAttr(o.OwnGroup, o.DeathSignal)
	p := &Proc{Name: name, cmd: cmd, stderr: &tailBuffer{max: stderrTail}, done: make(chan struct{})}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Stderr = p.stderr
	if o.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.stderr, o.Stderr)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("child: start %s: %w", name, err)
	}
	go func() { // ends when the child exits
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the child; a child that has exited is not an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("child: signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill SIGKILLs the child and waits until it is reaped.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop ends the child the way an operator does: SIGTERM (a gateway drains,
// a proxy closes), then SIGKILL once grace has passed (see Forced). It
// returns once the child is reaped.
func (p *Proc) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.forced.Store(true)
		p.Kill()
	}
}

// Forced reports whether Stop had to SIGKILL the child.
func (p *Proc) Forced() bool { return p.forced.Load() }

// Wait waits up to d for the child to exit and returns its exit code (-1
// if a signal ended it); ok is false on timeout.
func (p *Proc) Wait(d time.Duration) (code int, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return p.ExitCode(), true
	case <-t.C:
		return 0, false
	}
}

// Done is closed once the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the child's exit code, -1 if a signal ended it; valid once
// Done is closed.
func (p *Proc) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// PID returns the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// CPU returns the CPU time (user + system) the child has used so far.
func (p *Proc) CPU() (time.Duration, error) { return cpuTime(p.PID()) }

// Usage is what a child and its live descendants use, from /proc.
type Usage struct {
	// CPU is their user + system time so far.
	CPU time.Duration
	// RSS is the sum of their resident sets, in bytes: pages they share
	// (a binary's text, libc) count once in each process.
	RSS int64
	// Procs is the number of processes counted.
	Procs int
}

// Usage returns the CPU time and resident memory of the child and of its
// live descendants (nginx's worker processes, say).
func (p *Proc) Usage() (Usage, error) { return treeUsage(p.PID()) }

// Listens reports whether the child or a descendant holds the listening
// TCP socket on addr (127.0.0.1:port): a server told to listen on a port
// picked for it may have lost the port to another process, which then
// answers in its place.
func (p *Proc) Listens(addr string) (bool, error) { return treeListens(p.PID(), addr) }

// Stderr returns the last 16 KiB the child wrote to stderr.
func (p *Proc) Stderr() string { return p.stderr.String() }

// StderrTail returns the last n lines the child wrote to stderr.
func (p *Proc) StderrTail(n int) string {
	lines := strings.Split(p.stderr.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// firstLine is a child's stdout: it hands over the first line (the
// listening JSON) and discards the rest. Only exec's copying goroutine
// writes to it.
type firstLine struct {
	buf  []byte
	ch   chan []byte
	sent bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	if !w.sent {
		w.buf = append(w.buf, p...)
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.ch <- w.buf[:i]
			w.sent, w.buf = true, nil
		}
	}
	return len(p), nil
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
