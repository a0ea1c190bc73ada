package chaos

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestShortRun (issue 17): 20 faults, every kind among them (seed 1), on 2 proxies and 5
// gateways, seed fixed, with every guarantee checked: no violation.
func TestShortRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Binary: proctest.Binary(t), Faults: 20, Seed: 1, KeepGoing: true, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range res.Faults {
		kinds[f.Kind]++
	}
	failed := map[string]int{}
	for _, o := range res.Ops {
		if !o.OK() {
			failed[o.Kind+" "+o.Code]++
		}
	}
	t.Logf("failed calls by kind and code: %v", failed)
	js, _ := json.Marshal(res.Sessions)
	t.Logf("%d faults %v in %d ms; calls ok %d, failed %d %v; sessions %s",
		len(res.Faults), kinds, res.DurationMs, res.CallsOK, res.CallsFailed, res.Errors, js)
	if len(res.Faults) != 20 {
		t.Errorf("ran %d faults, want 20", len(res.Faults))
	}
	if res.Sessions.Verified == 0 || res.CallsOK == 0 {
		t.Errorf("the workload did nothing: %d calls ok, %d carts verified", res.CallsOK, res.Sessions.Verified)
	}
	for _, v := range res.Violations {
		t.Errorf("violation %s at %d ms: %s", v.Invariant, v.T, v.Detail)
	}
}
