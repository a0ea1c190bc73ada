package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The helpers here check JSON reports against DESIGN.md section 6 as a
// consumer would see them: decoded into generic maps from the file that
// WriteJSON wrote, with every required field present and of the right type.

// decodeFile writes v with WriteJSON and decodes the file generically.
func decodeFile(t *testing.T, v any) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.json")
	if err := WriteJSON(path, v); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("report is not a JSON object: %v\n%s", err, b)
	}
	return m
}

func number(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("field %q: %v (%T), want a number; in %v", key, m[key], m[key], m)
	}
	return v
}

func object(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("field %q: %v (%T), want an object", key, m[key], m[key])
	}
	return v
}

// requireReport checks one REPORT: the contract's fields and invariants.
// With sessions, it requires the sessions object and that every started
// session ended verified, lost or misrouted, none misrouted.
func requireReport(t *testing.T, m map[string]any, sessions bool) {
	t.Helper()
	ok := number(t, m, "calls_ok")
	number(t, m, "calls_failed")
	number(t, m, "throughput_per_s")
	for code := range object(t, m, "errors") {
		number(t, object(t, m, "errors"), code)
	}
	lat := object(t, m, "latency_us")
	prev := 0.0
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		v := number(t, lat, k)
		if v < prev {
			t.Fatalf("latency_us: %s %v below the previous percentile %v", k, v, prev)
		}
		prev = v
	}
	var served float64
	pg := object(t, m, "per_gateway")
	for gw := range pg {
		served += number(t, pg, gw)
	}
	if served > ok {
		t.Fatalf("per_gateway sums to %v, more than calls_ok %v", served, ok)
	}
	if !sessions {
		return
	}
	s := object(t, m, "sessions")
	started, verified, lost, misrouted := number(t, s, "started"), number(t, s, "verified"), number(t, s, "lost"), number(t, s, "misrouted")
	if started != verified+lost+misrouted {
		t.Fatalf("sessions: started %v != verified %v + lost %v + misrouted %v", started, verified, lost, misrouted)
	}
	if misrouted != 0 {
		t.Fatalf("sessions: %v misrouted", misrouted)
	}
	if started == 0 {
		t.Fatal("sessions: none started")
	}
}

// requireScenario checks a scenario report: name, runs with labels, events
// with their fields, and no violations. It returns the runs by label.
func requireScenario(t *testing.T, sr *ScenarioReport, name string, sessions bool) (map[string]map[string]any, []any) {
	t.Helper()
	m := decodeFile(t, sr)
	if m["scenario"] != name {
		t.Fatalf("scenario = %v, want %s", m["scenario"], name)
	}
	runs, ok := m["runs"].([]any)
	if !ok || len(runs) == 0 {
		t.Fatalf("runs: %v", m["runs"])
	}
	byLabel := map[string]map[string]any{}
	for _, r := range runs {
		rm := r.(map[string]any)
		label, _ := rm["label"].(string)
		if label == "" {
			t.Fatalf("a run without a label: %v", rm)
		}
		requireReport(t, rm, sessions)
		byLabel[label] = rm
	}
	events, ok := m["events"].([]any)
	if !ok {
		t.Fatalf("events: %v, want an array", m["events"])
	}
	for _, e := range events {
		em := e.(map[string]any)
		number(t, em, "t_ms")
		switch em["kind"] {
		case "kill", "term", "stop", "join":
		default:
			t.Fatalf("event kind %v", em["kind"])
		}
		if g, _ := em["gateway"].(string); g == "" {
			t.Fatalf("event without a gateway: %v", em)
		}
	}
	if len(sr.Violations) > 0 {
		t.Fatalf("violations: %v\nnotes: %v", sr.Violations, sr.Notes)
	}
	return byLabel, events
}
