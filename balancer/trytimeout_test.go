package balancer

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// startSilent runs a proxy in front of two gateways with attempts timing
// out after tryTimeout, and makes the first gateway silent: it holds every
// call for latency (its connections stay open and it answers PINGs, as a
// gateway that is stopped keeps its sockets).
func startSilent(t *testing.T, tryTimeout, latency time.Duration, mutate func(*Config)) (*Proxy, []*gateway.Gateway, *gatewaytest.Peer) {
	t.Helper()
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.TryTimeout = tryTimeout
		if mutate != nil {
			mutate(c)
		}
	})
	if err := gs[0].Faults().SetLatency(latency); err != nil {
		t.Fatal(err)
	}
	a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	return p, gs, a
}

// awaitSettled waits until the proxy holds nothing for any call: no active
// call, no call-table entry, no breaker ticket, no retry.
func awaitSettled(t *testing.T, p *Proxy) {
	t.Helper()
	proctest.Eventually(t, 10*time.Second, "every call settled and released", func() bool {
		if p.Stats().Active != 0 || p.retries.Load() != 0 {
			return false
		}
		for _, m := range p.Pool() {
			if m.InFlight != 0 || (m.Health != nil && m.Health.Breaker != nil && m.Health.Breaker.InFlight != 0) {
				return false
			}
		}
		return true
	})
}

// sendCalls starts n calls c with ids 1..n and returns their reply
// channels.
func sendCalls(a *gatewaytest.Peer, c gatewaytest.Call, n int) []<-chan *protocol.Frame {
	chs := make([]<-chan *protocol.Frame, n)
	for i := range chs {
		c.CallID = uint32(i + 1)
		_, chs[i] = a.Start(c)
	}
	return chs
}

// awaitResults waits for the replies of sendCalls: each a RESULT.
func awaitResults(t *testing.T, a *gatewaytest.Peer, chs []<-chan *protocol.Frame) {
	t.Helper()
	for i, ch := range chs {
		f := a.Wait(ch)
		if f == nil || f.Type != protocol.TypeResult {
			t.Fatalf("call %d: %s, want a RESULT", i+1, gatewaytest.Describe(f))
		}
	}
}

// TestTryTimeoutRetriesElsewhere: idempotent stateless calls, some sent to
// a gateway that answers nothing for 1.5s, are all answered by the other
// well within the silence and their 10s deadline; each is answered once:
// after the silent gateway ran them, its late replies are dropped.
func TestTryTimeoutRetriesElsewhere(t *testing.T) {
	const latency = 1500 * time.Millisecond
	p, gs, a := startSilent(t, 150*time.Millisecond, latency, nil)
	before := served(gs[:1], "orders@1")
	c := getOrderCall
	c.Flags |= protocol.FlagIdempotent
	c.Deadline = 10000
	const n = 8
	start := time.Now()
	awaitResults(t, a, sendCalls(a, c, n)) // at once: the picker spreads them over both
	took := time.Since(start)
	if took >= latency {
		t.Fatalf("the calls took %v, not less than the silent gateway's %v", took, latency)
	}
	st := p.Stats()
	if st.TryTimeouts == 0 {
		t.Fatal("no attempt timed out: none reached the silent gateway")
	}
	t.Logf("%d calls answered in %v; %d attempts timed out, %d retries", n, took, st.TryTimeouts, st.Retries)
	// The silent gateway runs what it was sent, and answers late.
	proctest.Eventually(t, 10*time.Second, "the silent gateway ran its calls", func() bool {
		return served(gs[:1], "orders@1")-before >= uint64(st.TryTimeouts)
	})
	proctest.Eventually(t, 10*time.Second, "its late replies dropped", func() bool {
		return p.Stats().LateReplies >= st.TryTimeouts
	})
	expectSilence(t, a) // no second reply to any call
	awaitSettled(t, p)
	if f := a.Call(c); f == nil || f.Type != protocol.TypeResult {
		t.Fatalf("a call afterwards: %s", gatewaytest.Describe(f))
	}
}

// TestTryTimeoutSparesNonIdempotent: a call that is not IDEMPOTENT may
// have run, so it is never sent again on a try timeout: the calls the
// silent gateway got wait for it and are answered by it, once.
func TestTryTimeoutSparesNonIdempotent(t *testing.T) {
	const latency = 600 * time.Millisecond
	p, gs, a := startSilent(t, 100*time.Millisecond, latency, nil)
	before := served(gs, "orders@1")
	const n = 8
	start := time.Now()
	awaitResults(t, a, sendCalls(a, getOrderCall, n))
	if took := time.Since(start); took < latency {
		t.Fatalf("the calls took %v: none waited for the silent gateway (%v)", took, latency)
	}
	if st := p.Stats(); st.TryTimeouts != 0 || st.Retries != 0 {
		t.Fatalf("%d try timeouts, %d retries of non-idempotent calls, want 0", st.TryTimeouts, st.Retries)
	}
	if got := served(gs, "orders@1") - before; got != n {
		t.Fatalf("the gateways ran %d calls, want %d: each once", got, n)
	}
	expectSilence(t, a)
	awaitSettled(t, p)
}

// TestTryTimeoutLastAttemptWaitsForDeadline: with every gateway silent, an
// idempotent call's attempts time out until it has none left; the last
// waits, and the call fails at its own deadline with DEADLINE_EXCEEDED.
func TestTryTimeoutLastAttemptWaitsForDeadline(t *testing.T) {
	const deadline = 800 * time.Millisecond
	p, gs, a := startSilent(t, 100*time.Millisecond, 5*time.Second, func(c *Config) { c.MaxAttempts = 2 })
	if err := gs[1].Faults().SetLatency(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c := getOrderCall
	c.Flags |= protocol.FlagIdempotent
	c.Deadline = uint32(deadline / time.Millisecond)
	start := time.Now()
	f := a.Call(c)
	took := time.Since(start)
	if f == nil || f.Type != protocol.TypeError {
		t.Fatalf("call to silent gateways: %s, want an ERROR", gatewaytest.Describe(f))
	}
	if err := protocol.ErrorFromBody(f.Body); !errors.Is(err, protocol.ErrDeadlineExceeded) {
		t.Fatalf("call to silent gateways: %v, want DEADLINE_EXCEEDED", err)
	}
	if took < deadline {
		t.Fatalf("the call failed after %v, before its deadline %v", took, deadline)
	}
	if st := p.Stats(); st.TryTimeouts != 1 {
		t.Fatalf("%d attempts timed out, want 1 (MaxAttempts 2: the last has none)", st.TryTimeouts)
	}
	expectSilence(t, a)
	awaitSettled(t, p)
}

// TestTryTimeoutOff: a negative TryTimeout turns it off: an idempotent
// call sent to the silent gateway waits for it.
func TestTryTimeoutOff(t *testing.T) {
	const latency = 500 * time.Millisecond
	p, gs, a := startSilent(t, -1, latency, nil)
	if err := gs[1].Faults().SetLatency(latency); err != nil {
		t.Fatal(err)
	}
	c := getOrderCall
	c.Flags |= protocol.FlagIdempotent
	start := time.Now()
	if f := a.Call(c); f == nil || f.Type != protocol.TypeResult {
		t.Fatalf("call: %s, want a RESULT", gatewaytest.Describe(f))
	}
	if took := time.Since(start); took < latency {
		t.Fatalf("the call took %v, less than the gateways' %v", took, latency)
	}
	if st := p.Stats(); st.TryTimeouts != 0 {
		t.Fatalf("%d try timeouts with TryTimeout off", st.TryTimeouts)
	}
	awaitSettled(t, p)
}

// TestTryTimeoutGatewayStopped SIGSTOPs one of two gateway processes (alive,
// its connections open, silent: the case of issue 17): idempotent calls
// sent to it are answered by the other within a fraction of their 10s
// deadline. Once it is SIGCONTed it answers them late, and the proxy
// drops those replies: each call is answered once.
func TestTryTimeoutGatewayStopped(t *testing.T) {
	procs, p := startGatewayProcsWith(t, 2, func(c *Config) { c.TryTimeout = 200 * time.Millisecond })
	proctest.Eventually(t, 10*time.Second, "proxy connected to both gateways", func() bool {
		pool := p.Pool()
		return len(pool) == 2 && pool[0].State == "ready" && pool[1].State == "ready"
	})
	a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	c := getOrderCall
	c.Flags |= protocol.FlagIdempotent
	c.Deadline = 10000
	if err := procs[0].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	resume := func() {
		if stopped {
			stopped = false
			if err := procs[0].Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume) // before the process's own cleanup kills it
	// Batches of calls at once, until the picker has sent one to gw1 (it
	// spreads by load, and a batch may all go to gw2).
	const n = 8
	var st Stats
	for batch := 1; st.TryTimeouts == 0; batch++ {
		if batch > 10 {
			t.Fatal("no attempt timed out: no call of 10 batches reached the stopped gateway")
		}
		start := time.Now()
		awaitResults(t, a, sendCalls(a, c, n))
		took := time.Since(start)
		if took > 3*time.Second {
			t.Fatalf("batch %d took %v with one gateway stopped", batch, took)
		}
		st = p.Stats()
		t.Logf("batch %d: %d calls with gw1 stopped answered in %v; %d attempts timed out in all", batch, n, took, st.TryTimeouts)
	}
	resume()
	proctest.Eventually(t, 10*time.Second, "the resumed gateway's late replies dropped", func() bool {
		return p.Stats().LateReplies >= st.TryTimeouts
	})
	expectSilence(t, a)
	awaitSettled(t, p)
}
