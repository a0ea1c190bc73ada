package chaos

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
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
	bin := proctest.Binary(t) // built before the clock starts: a loaded machine takes minutes
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Binary: bin, Faults: 20, Seed: 1, KeepGoing: true, Log: logWriter{t}})
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

// TestPartitions (issue 17): a short run in network namespaces whose
// schedule cuts gateways off from one proxy and isolates one from every
// other process (seed 19: an isolation of 5.5 s, two one-proxy
// partitions, a kill), with every guarantee checked: no
// violation. Each cut was real (a call from the cut-off proxy's
// namespace to the gateway failed while cut and succeeded once healed),
// and nothing of the network is left afterwards.
func TestPartitions(t *testing.T) {
	bin := proctest.Binary(t) // built before the clock starts: a loaded machine takes minutes
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Binary: bin, Net: NetNetns, Gateways: 3, Faults: 4, Seed: 19, KeepGoing: true,
		Kinds: []string{FaultPartitionGateway, FaultIsolateGateway, FaultKillGateway}, Log: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(res.Sessions)
	t.Logf("%d faults in %d ms; calls ok %d, failed %d %v; sessions %s", len(res.Faults), res.DurationMs, res.CallsOK, res.CallsFailed, res.Errors, js)
	kinds := map[string]int{}
	for _, f := range res.Faults {
		kinds[f.Kind]++
		if f.Kind != FaultPartitionGateway && f.Kind != FaultIsolateGateway {
			continue
		}
		if !f.CutSeen || !f.HealSeen {
			t.Errorf("%s of %s|%s at %d ms: a call across the cut failed while cut: %v, succeeded once healed: %v", f.Kind, f.Target, f.Peer, f.T, f.CutSeen, f.HealSeen)
		}
	}
	if kinds[FaultPartitionGateway] == 0 || kinds[FaultIsolateGateway] == 0 {
		t.Errorf("the schedule holds %v: no partition to test", kinds)
	}
	if res.Sessions.Verified == 0 || res.CallsOK == 0 {
		t.Errorf("the workload did nothing: %d calls ok, %d carts verified", res.CallsOK, res.Sessions.Verified)
	}
	for _, v := range res.Violations {
		t.Errorf("violation %s at %d ms: %s", v.Invariant, v.T, v.Detail)
	}
	assertNoNetworkLeft(t)
}

// assertNoNetworkLeft fails if a namespace or link of this process's runs
// is still there.
func assertNoNetworkLeft(t *testing.T) {
	t.Helper()
	tag := (&netns{pid: os.Getpid()}).tag()
	for _, c := range [][]string{{"netns", "list"}, {"link", "show"}} {
		out, err := exec.Command("ip", c...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, nsPrefix+strconv.Itoa(os.Getpid())) || strings.Contains(line, " "+tag) {
				t.Errorf("left after the run (ip %s): %s", strings.Join(c, " "), line)
			}
		}
	}
}
