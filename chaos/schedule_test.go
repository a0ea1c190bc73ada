package chaos

import (
	"slices"
	"strings"
	"testing"
)

func TestScheduleIsAFunctionOfTheSeed(t *testing.T) {
	p := ScheduleParams{Gateways: 5, Proxies: 2, Faults: 200}
	a, b := Schedule(7, p), Schedule(7, p)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed drew two schedules")
	}
	if c := Schedule(8, p); slices.Equal(a, c) {
		t.Fatal("seeds 7 and 8 drew the same schedule")
	}
	if len(a) != 200 {
		t.Fatalf("drew %d faults, want 200", len(a))
	}
	kinds := map[string]int{}
	for _, f := range a {
		kinds[f.Kind]++
	}
	for _, k := range AllFaults {
		if kinds[k] == 0 {
			t.Errorf("200 faults hold no %s", k)
		}
	}
}

// At no time are more gateways under a fault than the share allows, nor
// every proxy: the model of busy targets holds.
func TestScheduleRespectsTheShare(t *testing.T) {
	p := ScheduleParams{Gateways: 5, Proxies: 2, Faults: 500, MaxShare: 0.4}
	fs := Schedule(1, p)
	for i, f := range fs {
		gws, proxies := 0, 0
		for _, g := range fs[:i+1] {
			if g.Kind == FaultJoinGateway || g.T+g.Duration < f.T {
				continue
			}
			if strings.HasPrefix(g.Target, "p") {
				proxies++
			} else {
				gws++
			}
		}
		if gws > 2 || proxies > 1 {
			t.Fatalf("at %d ms %d gateways and %d proxies are under a fault (max 2 and 1)", f.T, gws, proxies)
		}
	}
}
