package health

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/graftlb/graftlb/clock"
)

func TestSnapshot(t *testing.T) {
	fake := clock.NewFake()
	c, err := NewChecker(CheckerConfig{Clock: fake, InitialState: InitUp})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := NewDetector(OutlierConfig{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	c.Add("gw1", func(context.Context) error { return nil })
	c.Add("gw2", func(context.Context) error { return errProbe })
	c.Round()
	r1, _ := d.Add("gw1")
	d.Add("gw2")
	d.Add("gw3")
	report(r1, 0, 5)
	d.EjectTripped()
	br, _ := NewBreaker("gw3", Settings{Clock: fake})
	tk, _ := br.Allow()
	defer br.Done(tk, true)

	got := Snapshot(c, d, map[string]*Breaker{"gw3": br})
	if len(got) != 3 {
		t.Fatalf("%d targets, want 3", len(got))
	}
	for i, want := range []struct {
		name                 string
		healthy              bool
		check, outlier, brkr bool
	}{
		{"gw1", false, true, true, false}, // up but ejected
		{"gw2", false, true, true, false}, // down
		{"gw3", true, false, true, true},
	} {
		g := got[i]
		if g.Name != want.name || g.Healthy != want.healthy || (g.Check != nil) != want.check || (g.Outlier != nil) != want.outlier || (g.Breaker != nil) != want.brkr {
			t.Errorf("target %d: %+v, want %+v", i, g, want)
		}
	}

	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, key := range []string{
		`"name":"gw1"`, `"state":"up"`, `"consecutive_successes":1`, `"last_check":"2026-01-01T00:00:00Z"`,
		`"ejected":true`, `"reason":"consecutive_failures"`, `"ejected_until":"2026-01-01T00:00:30Z"`, `"ejection_count":1`,
		`"last_error":"probe failed"`, `"state":"closed"`, `"in_flight":1`,
	} {
		if !strings.Contains(js, key) {
			t.Errorf("JSON lacks %s:\n%s", key, js)
		}
	}
	if strings.Contains(js, `"open_until"`) || strings.Contains(js, `"ejected_until":"0001`) {
		t.Errorf("zero times not omitted:\n%s", js)
	}
	if Snapshot(nil, nil, nil) == nil {
		// An empty pool is an empty list, not null, in the admin API.
		t.Error("Snapshot of nothing is nil")
	}
}
