package chaos

import (
	"strings"
	"testing"
)

// A clean history: two carts on their owners, one handed over by a drain,
// stateless calls that failed only for a reason.
func cleanHistory() ([]Op, []Fault, CheckParams) {
	p := CheckParams{Gateways: []string{"gw1", "gw2", "gw3"}, SessionTTL: 60_000, Grace: 2_000, End: 100_000, RecoveryBound: 10_000}
	add := func(w, cart, n int, gw string, t int64) Op {
		names := make([]string, n)
		for i := range names {
			names[i] = ItemName(i, int64(100+i))
		}
		return Op{Worker: w, Kind: OpCartAdd, Proxy: "p1", Cart: cart, Gateway: gw, Name: names[n-1], Items: n, Total: sumPrices(names), Start: t, End: t + 5}
	}
	ops := []Op{
		{Worker: 1, Kind: OpCartNew, Proxy: "p1", Cart: 1, Start: 1000, End: 1005},
		add(1, 1, 1, "gw1", 1100),
		{Worker: 1, Kind: OpCartAdd, Proxy: "p1", Cart: 1, Code: "UNAVAILABLE", Start: 1150, End: 1151}, // did not run
		add(1, 1, 2, "gw1", 1200),
		{Worker: 1, Kind: OpCartRead, Proxy: "p1", Cart: 1, Gateway: "gw1", Names: []string{ItemName(0, 100), ItemName(1, 101)}, Total: 201, Start: 1300, End: 1305},
		// Cart 2 is handed from gw2 to gw3 by gw2's drain at 5000.
		{Worker: 2, Kind: OpCartNew, Proxy: "p1", Cart: 2, Start: 4000, End: 4005},
		add(2, 2, 1, "gw2", 4100),
		add(2, 2, 2, "gw3", 5500),
		// Cart 3 lost with its owner gw1, killed at 20000.
		{Worker: 3, Kind: OpCartNew, Proxy: "p1", Cart: 3, Start: 19000, End: 19005},
		add(3, 3, 1, "gw1", 19100),
		{Worker: 3, Kind: OpCartAdd, Proxy: "p1", Cart: 3, Code: "SESSION_LOST", Start: 21000, End: 21001},
		// A non-idempotent call in flight while gw1 died; an idempotent one
		// through p2 while p2 was killed; an INTERNAL while gw3 was made to fail.
		{Worker: 4, Kind: OpStateless, Proxy: "p1", Code: "UNAVAILABLE", Start: 19990, End: 20010},
		{Worker: 5, Kind: OpStateless, Proxy: "p2", Idempotent: true, Code: "UNAVAILABLE", Start: 30_500, End: 30_501},
		{Worker: 6, Kind: OpStateless, Proxy: "p1", Idempotent: true, Code: "INTERNAL", Start: 40_500, End: 40_501},
		{Worker: 7, Kind: OpCallback, Proxy: "p1", Start: 50_000, End: 50_010},
		{Worker: 7, Kind: OpEvents, Proxy: "p1", Start: 50_020, End: 50_030},
	}
	faults := []Fault{
		{T: 5000, Kind: FaultTermGateway, Target: "gw2", End: 7000, Recovered: true, PoolRecovered: true},
		{T: 20_000, Kind: FaultKillGateway, Target: "gw1", End: 22_000, Recovered: true, PoolRecovered: true},
		{T: 30_000, Kind: FaultKillProxy, Target: "p2", End: 31_000, Recovered: true, PoolRecovered: true},
		{T: 40_000, Kind: FaultFailGateway, Target: "gw3", End: 41_000, Recovered: true, PoolRecovered: true},
	}
	return ops, faults, p
}

func TestCheckCleanHistory(t *testing.T) {
	ops, faults, p := cleanHistory()
	if v := Check(ops, faults, p); len(v) != 0 {
		t.Fatalf("a clean history has violations: %+v", v)
	}
}

// Each kind of violation injected into the clean history is reported, as
// that invariant, and only it.
func TestCheckFindsInjectedViolations(t *testing.T) {
	cases := []struct {
		name      string
		invariant string
		mutate    func(ops []Op, faults []Fault) ([]Op, []Fault)
	}{
		{"read back on another gateway", InvMisrouted, func(ops []Op, f []Fault) ([]Op, []Fault) {
			ops[4].Gateway = "gw2"
			return ops, f
		}},
		{"read back missing an acknowledged item", InvMisrouted, func(ops []Op, f []Fault) ([]Op, []Fault) {
			ops[4].Names = ops[4].Names[:1]
			return ops, f
		}},
		{"an add that lost the previous one", InvMisrouted, func(ops []Op, f []Fault) ([]Op, []Fault) {
			ops[3].Items = 1
			return ops, f
		}},
		{"moved with no drain", InvMisrouted, func(ops []Op, f []Fault) ([]Op, []Fault) {
			return ops, f[1:] // gw2 never drained, yet cart 2 went to gw3
		}},
		{"lost though its owner lived", InvLostNoCause, func(ops []Op, f []Fault) ([]Op, []Fault) {
			f[1].Target = "gw3" // gw3 died, not cart 3's owner gw1
			f[3].Target = "gw2"
			return ops, f
		}},
		{"stateless failure with healthy gateways", InvStateless, func(ops []Op, f []Fault) ([]Op, []Fault) {
			return append(ops, Op{Worker: 8, Kind: OpStateless, Proxy: "p1", Idempotent: true, Code: "UNAVAILABLE", Start: 60_000, End: 60_001}), f
		}},
		{"idempotent failure while a gateway died", InvStateless, func(ops []Op, f []Fault) ([]Op, []Fault) {
			ops[11].Idempotent = true // the proxy should have retried it
			return ops, f
		}},
		{"foreign event", InvForeign, func(ops []Op, f []Fault) ([]Op, []Fault) {
			return append(ops, Op{Worker: 7, Kind: OpForeignEvent, Proxy: "p1", Detail: "tick of topic w3", Start: 50_025, End: 50_025}), f
		}},
		{"callback sum wrong", InvForeign, func(ops []Op, f []Fault) ([]Op, []Fault) {
			ops[14].Detail = "Each returned 12, want 10"
			return ops, f
		}},
		{"pool never showed the truth", InvRecovery, func(ops []Op, f []Fault) ([]Op, []Fault) {
			f[2].PoolRecovered = false
			return ops, f
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops, faults, p := cleanHistory()
			ops, faults = tc.mutate(ops, faults)
			v := Check(ops, faults, p)
			if len(v) != 1 || v[0].Invariant != tc.invariant {
				t.Fatalf("got %+v, want one %s violation", v, tc.invariant)
			}
			if !strings.Contains(v[0].Detail, "ms") {
				t.Errorf("detail %q does not say when", v[0].Detail)
			}
		})
	}
}

// A deadline missed while the checker's own process did not run is not
// the proxies' failure; the same failure with no stall is.
func TestCheckExcusesDeadlinesOfAStalledChecker(t *testing.T) {
	ops, faults, p := cleanHistory()
	ops = append(ops, Op{Worker: 8, Kind: OpStateless, Proxy: "p1", Idempotent: true, Code: "DEADLINE_EXCEEDED", Start: 60_000, End: 64_000})
	if v := Check(ops, faults, p); len(v) != 1 || v[0].Invariant != InvStateless {
		t.Fatalf("without a stall: %+v, want one %s", v, InvStateless)
	}
	p.Stalls = []Stall{{From: 61_000, To: 63_500}}
	if v := Check(ops, faults, p); len(v) != 0 {
		t.Fatalf("with the checker stalled meanwhile: %+v, want none", v)
	}
}

// A session handed over by a drain to a gateway its client never heard
// from, then killed, is lost for a reason; without the kill it is not.
func TestCheckLostAfterADrainAndAKill(t *testing.T) {
	ops, faults, p := cleanHistory()
	ops = append(ops,
		Op{Worker: 9, Kind: OpCartNew, Proxy: "p1", Cart: 1, Start: 70_000, End: 70_005},
		Op{Worker: 9, Kind: OpCartAdd, Proxy: "p1", Cart: 1, Gateway: "gw3", Name: ItemName(0, 100), Items: 1, Total: 100, Start: 70_100, End: 70_105},
		Op{Worker: 9, Kind: OpCartAdd, Proxy: "p1", Cart: 1, Code: "SESSION_LOST", Start: 80_000, End: 80_001})
	drain := Fault{T: 72_000, Kind: FaultTermGateway, Target: "gw3", End: 74_000, Recovered: true, PoolRecovered: true}
	if v := Check(ops, append(faults, drain), p); len(v) != 1 || v[0].Invariant != InvLostNoCause {
		t.Fatalf("drained, nothing killed: %+v, want one %s", v, InvLostNoCause)
	}
	kill := Fault{T: 75_000, Kind: FaultKillGateway, Target: "gw2", End: 77_000, Recovered: true, PoolRecovered: true}
	if v := Check(ops, append(faults, drain, kill), p); len(v) != 0 {
		t.Fatalf("drained, then another gateway killed: %+v, want none", v)
	}
}

// Partitions: a session lost with its owner isolated long enough is lost
// for a reason, one lost through a one-proxy partition is not; a call
// through the cut proxy is excused while the proxy could not know, or
// later when it names the cut gateway, not through the other proxy.
func TestCheckPartitions(t *testing.T) {
	ops, faults, p := cleanHistory()
	lost := []Op{
		{Worker: 9, Kind: OpCartNew, Proxy: "p1", Cart: 1, Start: 70_000, End: 70_005},
		{Worker: 9, Kind: OpCartAdd, Proxy: "p1", Cart: 1, Gateway: "gw3", Name: ItemName(0, 100), Items: 1, Total: 100, Start: 70_100, End: 70_105},
		{Worker: 9, Kind: OpCartAdd, Proxy: "p1", Cart: 1, Code: "SESSION_LOST", Start: 80_000, End: 80_001},
	}
	cut := Fault{T: 72_000, Kind: FaultPartitionGateway, Target: "gw3", Peer: "p1", End: 78_000, Recovered: true, PoolRecovered: true}
	if v := Check(append(ops, lost...), append(faults, cut), p); len(v) != 1 || v[0].Invariant != InvLostNoCause {
		t.Fatalf("lost through a one-proxy partition: %+v, want one %s", v, InvLostNoCause)
	}
	iso := Fault{T: 72_000, Kind: FaultIsolateGateway, Target: "gw3", End: 78_000, Recovered: true, PoolRecovered: true}
	if v := Check(append(ops, lost...), append(faults, iso), p); len(v) != 0 {
		t.Fatalf("lost with its owner isolated 6 s: %+v, want none", v)
	}
	iso.End = 73_000
	if v := Check(append(ops, lost...), append(faults, iso), p); len(v) != 1 || v[0].Invariant != InvLostNoCause {
		t.Fatalf("lost with its owner isolated 1 s: %+v, want one %s", v, InvLostNoCause)
	}

	calls := []Op{
		{Worker: 10, Kind: OpStateless, Proxy: "p1", Idempotent: true, Code: "DEADLINE_EXCEEDED", Start: 71_900, End: 74_900},
		{Worker: 11, Kind: OpStateless, Proxy: "p1", Code: "UNAVAILABLE", Start: 77_000, End: 77_500,
			Detail: "UNAVAILABLE: connection to gateway gw3 broke with the call in flight; it may have run"},
	}
	if v := Check(append(ops, calls...), append(faults, cut), p); len(v) != 0 {
		t.Fatalf("calls through the cut proxy: %+v, want none", v)
	}
	for i := range calls {
		calls[i].Proxy = "p2"
	}
	if v := Check(append(ops, calls...), append(faults, cut), p); len(v) != 2 {
		t.Fatalf("the same calls through the proxy not cut: %+v, want two %s", v, InvStateless)
	}
}
