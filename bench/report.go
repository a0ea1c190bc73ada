package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Report is the result of one run, in the JSON shape of DESIGN.md section
// 6: the contract's fields first, then what the bench adds.
type Report struct {
	// Label names the run in a scenario ("direct", "graftlb", "haproxy",
	// "gateways=4").
	Label string `json:"label,omitempty"`

	CallsOK     int64            `json:"calls_ok"`
	CallsFailed int64            `json:"calls_failed"`
	Errors      map[string]int64 `json:"errors"` // code → calls
	// ErrorSamples holds the first message seen for each error code.
	ErrorSamples   map[string]string `json:"error_samples,omitempty"`
	ThroughputPerS float64           `json:"throughput_per_s"`
	LatencyUs      Latency           `json:"latency_us"` // successful calls only
	// PerGateway counts the successful calls whose result names the
	// gateway that ran it (every result but a constructor's does).
	PerGateway map[string]int64 `json:"per_gateway"`
	// Sessions is set for the workloads that build carts.
	Sessions *Sessions `json:"sessions,omitempty"`

	// SessionsOnTarget (failover, drain) counts the sessions that lived on
	// the killed or drained gateway at or after the event: those whose
	// results named it, and those lost before any result named a gateway.
	SessionsOnTarget *int64 `json:"sessions_on_target,omitempty"`
	// RecoveryMs (failover, drain) is the time from the event until
	// throughput is back to 90% of its mean before, to the bucket (0: it
	// did not fall below); Recovered is false when it had not come back by
	// the end.
	RecoveryMs *float64 `json:"recovery_ms,omitempty"`
	Recovered  *bool    `json:"recovered,omitempty"`
	// SessionsMoved (rolling) counts the sessions the drained gateways
	// handed over to others, as they reported it (GET /stats); Drains says
	// how long each drain took, from SIGTERM to the process's exit.
	SessionsMoved *int64  `json:"sessions_moved,omitempty"`
	Drains        []Drain `json:"drains,omitempty"`
	// ProxyCPUUsPerCall is the proxy process's CPU time (user + system)
	// during the run divided by the calls it carried, for runs whose proxy
	// the scenario started.
	ProxyCPUUsPerCall *float64 `json:"proxy_cpu_us_per_call,omitempty"`
	// NATSCPUUsPerCall (transport) is the NATS server process's CPU time
	// during the run divided by the calls, measured like the proxy's.
	NATSCPUUsPerCall *float64 `json:"nats_cpu_us_per_call,omitempty"`
	// ProxyRSSMB is the proxy's resident memory in MB (10^6 bytes): the
	// highest of samples taken every rssSampleEvery during the run, each
	// the sum over its processes (nginx's master and workers).
	ProxyRSSMB *float64 `json:"proxy_rss_mb,omitempty"`
	// ProxyVCPUPer1k and ProxyMBPer1k are the proxy's cores busy and its
	// MB of RSS per 1,000 calls/s, the unit Istio publishes for Envoy:
	// vCPU is ProxyCPUUsPerCall / 1000, MB is ProxyRSSMB over the
	// throughput in thousands of calls/s.
	ProxyVCPUPer1k *float64 `json:"proxy_vcpu_per_1k_calls_s,omitempty"`
	ProxyMBPer1k   *float64 `json:"proxy_mb_per_1k_calls_s,omitempty"`
	// Proxy names the proxy of a compare run: graftlb, haproxy or nginx
	// (none for a direct run).
	Proxy string `json:"proxy,omitempty"`
	// Gateways is the pool size behind the target, when the scenario
	// knows it; IdealRatio (scaleout) is the throughput over the ideal
	// linear line through the smallest pool's.
	Gateways   int      `json:"gateways,omitempty"`
	IdealRatio *float64 `json:"ideal_ratio,omitempty"`

	Target      string   `json:"target"`
	Workload    Workload `json:"workload"`
	Mode        string   `json:"mode"` // closed or open
	Conns       int      `json:"conns"`
	Concurrency int      `json:"concurrency"`
	Rate        float64  `json:"rate,omitempty"`
	// CallsUnsent (open loop) counts calls that were due but never sent:
	// the users were all busy until the end and its grace period.
	CallsUnsent int64 `json:"calls_unsent,omitempty"`
	// DurationS is the time from the start to the last completed call.
	DurationS float64  `json:"duration_s"`
	BucketMs  int64    `json:"bucket_ms"`
	Series    []Bucket `json:"series"`
	// Interrupted is set when the run was stopped before its duration.
	Interrupted bool `json:"interrupted,omitempty"`

	sessions Sessions // counted for every workload; exported if it has sessions
	events   []Event  // marked during the run (for the plot)
}

// Latency holds latency percentiles in microseconds.
type Latency struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// Sessions counts cart sessions by how they ended. Every started session
// ends verified, lost or misrouted before the report is made.
type Sessions struct {
	Started   int64 `json:"started"`
	Verified  int64 `json:"verified"`
	Lost      int64 `json:"lost"`
	Misrouted int64 `json:"misrouted"`
}

// Drain is one gateway's drain in a scenario.
type Drain struct {
	Gateway string  `json:"gateway"`
	Ms      float64 `json:"ms"` // SIGTERM to exit
	// SessionsMoved and SessionsLost are what the gateway reported last
	// before it exited: sessions handed over, and still held at the end.
	SessionsMoved int64 `json:"sessions_moved"`
	SessionsLost  int64 `json:"sessions_lost"`
}

// Event is something a scenario did to the pool during a run.
type Event struct {
	// TMs is the time since the start of the run, in milliseconds.
	TMs int64 `json:"t_ms"`
	// Kind is kill (SIGKILL), term (SIGTERM: drain), stop (the process
	// exited) or join (a gateway joined).
	Kind    string `json:"kind"`
	Gateway string `json:"gateway"`
}

// ScenarioReport is what `graftlb bench --scenario NAME --json FILE`
// writes.
type ScenarioReport struct {
	Scenario string    `json:"scenario"`
	Runs     []*Report `json:"runs"`
	Events   []Event   `json:"events"`
	// Ratios (compare) set graftlb's runs against each peer's of the same
	// transport and loop.
	Ratios []Ratio `json:"ratios,omitempty"`
	// Notes say what the reader must know: a run skipped, a setting used.
	Notes []string `json:"notes,omitempty"`
	// Violations lists the scenario's invariants that did not hold.
	Violations []string `json:"violations,omitempty"`
	// Soak is the soak scenario's samples and verdict.
	Soak *SoakReport `json:"soak,omitempty"`
	// Durable (transport) is the durable-calls run: calls submitted with
	// every gateway stopped, then run by gateways of which one is killed.
	Durable *DurableReport `json:"durable,omitempty"`
}

// Ratio is graftlb over a peer proxy in one compare scenario, for two runs
// of the same transport and loop: throughput, p99, proxy CPU per call and
// proxy RSS of graftlb's run divided by the peer's. Below 1, graftlb has
// less of it (for calls/s, worse; for the others, better).
type Ratio struct {
	Run        string   `json:"run"`  // graftlb's run label
	Peer       string   `json:"peer"` // the peer's run label
	Throughput float64  `json:"throughput"`
	P99        float64  `json:"p99"`
	CPUPerCall *float64 `json:"cpu_per_call,omitempty"`
	RSS        *float64 `json:"rss,omitempty"`
}

// Check returns the invariants of DESIGN.md section 6 that r breaks:
// every started session ended verified, lost or misrouted, and none
// misrouted.
func (r *Report) Check() []string {
	var v []string
	if s := r.Sessions; s != nil {
		if s.Started != s.Verified+s.Lost+s.Misrouted {
			v = append(v, fmt.Sprintf("%s: sessions started %d != verified %d + lost %d + misrouted %d",
				r.name(), s.Started, s.Verified, s.Lost, s.Misrouted))
		}
		if s.Misrouted != 0 {
			v = append(v, fmt.Sprintf("%s: %d sessions misrouted", r.name(), s.Misrouted))
		}
	}
	return v
}

func (r *Report) name() string {
	if r.Label != "" {
		return r.Label
	}
	return r.Target
}

// WriteJSON writes v, indented, to path (atomically: a temporary file is
// renamed over it).
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-*.json")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
