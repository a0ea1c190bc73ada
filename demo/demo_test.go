package demo

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
	"go.uber.org/goleak"
)

// The demo itself runs as a process in cmd/graftlb's TestDemo; these are
// the parts that need no cluster.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNumAndPct(t *testing.T) {
	tests := []struct {
		n, total int64
		num, pct string
	}{
		{0, 0, "0", "0%"},
		{7, 28, "7", "25%"},
		{999, 1000, "999", "100%"},
		{1000, 3000, "1,000", "33%"},
		{1234567, 2469134, "1,234,567", "50%"},
		{-12345, 0, "-12,345", "0%"},
	}
	for _, tt := range tests {
		if got := num(tt.n); got != tt.num {
			t.Errorf("num(%d) = %q, want %q", tt.n, got, tt.num)
		}
		if got := pct(tt.n, tt.total); got != tt.pct {
			t.Errorf("pct(%d, %d) = %q, want %q", tt.n, tt.total, got, tt.pct)
		}
	}
}

func TestCompareNames(t *testing.T) {
	if compareNames("gw2", "gw10") >= 0 || compareNames("gw10", "gw9") <= 0 || compareNames("gw3", "gw3") != 0 {
		t.Error("gateway names do not sort naturally")
	}
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		err  error
		want outcome
	}{
		{nil, verified},
		{protocol.Errorf(protocol.CodeSessionLost, "gateway gw2 died holding the session"), lost},
		{fmt.Errorf("wrapped: %w", cart.State{Total: 4}.CheckTotal(cart.TotalResult{Total: 3, Gateway: "gw1"}, nil)), misroute},
		{errStopped, unfinished},
		{protocol.Errorf(protocol.CodeUnavailable, "x"), failed},
		{client.ErrConnectionLost, failed},
	}
	for _, tt := range tests {
		if got := outcomeOf(tt.err); got != tt.want {
			t.Errorf("outcomeOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	if got := codeOf(client.ErrConnectionLost); got != "CONNECTION_LOST" {
		t.Errorf("codeOf(ErrConnectionLost) = %q", got)
	}
	if got := codeOf(protocol.Errorf(protocol.CodeDraining, "x")); got != "DRAINING" {
		t.Errorf("codeOf(DRAINING) = %q", got)
	}
}

func TestTallySnapshotIsACopy(t *testing.T) {
	tl := newTally()
	tl.served("gw1", true)
	tl.fail("UNAVAILABLE", protocol.ErrUnavailable)
	tl.ended(lost, "gw2", protocol.ErrSessionLost)
	c := tl.snapshot()
	tl.served("gw1", true)
	if c.Calls != 1 || c.StatelessBy["gw1"] != 1 || c.failedCalls() != 1 || c.Lost != 1 || c.LostBy["gw2"] != 1 {
		t.Fatalf("snapshot %+v", c)
	}
}

// TestPrinterPlainAndLive checks that plain output has no escapes and that
// the live line's goroutine stops (goleak checks the rest).
func TestPrinterPlainAndLive(t *testing.T) {
	for _, color := range []bool{false, true} {
		var b syncBuf
		p := newPrinter(&b, color)
		stop := p.startLive(func() string { return strings.Repeat("x", 200) })
		p.check(check{name: "it held", ok: true})
		time.Sleep(300 * time.Millisecond)
		stop()
		p.bars("counts", map[string]int64{"gw1": 3, "gw2": 1}, []string{"gw1", "gw2"})
		out := b.String()
		if esc := strings.Contains(out, "\x1b["); esc != color {
			t.Errorf("color %v: escapes in output: %v\n%s", color, esc, out)
		}
		if !strings.Contains(out, " ok ") || !strings.Contains(out, " it held") || !strings.Contains(out, "gw1          3  75%") {
			t.Errorf("color %v: output:\n%s", color, out)
		}
		if color && strings.Contains(out, strings.Repeat("x", liveWidth)) {
			t.Error("live line not cut to the terminal width")
		}
	}
}

// syncBuf is a bytes.Buffer safe for the printer's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
