package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// benchReport is the part of the bench's JSON report these tests read.
type benchReport struct {
	Label       *string           `json:"label"`
	CallsOK     *int64            `json:"calls_ok"`
	CallsFailed *int64            `json:"calls_failed"`
	Errors      map[string]int64  `json:"errors"`
	Throughput  *float64          `json:"throughput_per_s"`
	LatencyUs   map[string]*int64 `json:"latency_us"`
	PerGateway  map[string]int64  `json:"per_gateway"`
	Sessions    *struct {
		Started, Verified, Lost, Misrouted int64
	} `json:"sessions"`
	Interrupted bool `json:"interrupted"`
}

// check verifies the contract fields of DESIGN.md section 6.
func (r *benchReport) check(t *testing.T, sessions bool) {
	t.Helper()
	if r.CallsOK == nil || r.CallsFailed == nil || r.Errors == nil || r.Throughput == nil || r.PerGateway == nil {
		t.Fatalf("report lacks a required field: %+v", r)
	}
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if r.LatencyUs[k] == nil {
			t.Fatalf("latency_us.%s missing: %v", k, r.LatencyUs)
		}
	}
	if !sessions {
		return
	}
	s := r.Sessions
	if s == nil || s.Started == 0 || s.Started != s.Verified+s.Lost+s.Misrouted || s.Misrouted != 0 {
		t.Fatalf("sessions %+v", s)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
}

func startGateway(t *testing.T) string {
	gw := proctest.Start(t, "gateway", "--name", "gw1", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--log-level", "warn")
	return gw.Addr.TCP
}

// TestBenchCommand runs `graftlb bench --target` as a user would, with a
// JSON report and a plot.
func TestBenchCommand(t *testing.T) {
	addr := startGateway(t)
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
	cmd := exec.Command(proctest.Binary(t), "bench", "--target", "tcp://"+addr, "--workload", "mixed",
		"--conns", "2", "--concurrency", "8", "--duration", "500ms", "--json", jsonPath, "--plot", plotPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("graftlb bench: %v\n%s", err, out)
	}
	for _, want := range []string{"throughput", "latency", "per gateway", "gw1 100.0%", "sessions"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\r") {
		t.Fatalf("progress line written to a pipe:\n%q", out)
	}
	var r benchReport
	readJSON(t, jsonPath, &r)
	r.check(t, true)
	if *r.CallsFailed != 0 || r.PerGateway["gw1"] == 0 {
		t.Fatalf("report %+v", r)
	}
	svg, err := os.ReadFile(plotPath)
	if err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Fatalf("plot: %v, %.100q", err, svg)
	}
}

// TestBenchCommandInterrupt stops a long run with Ctrl-C: the bench stops,
// finishes its sessions and still writes the report.
func TestBenchCommandInterrupt(t *testing.T) {
	addr := startGateway(t)
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(proctest.Binary(t), "bench", "--target", "tcp://"+addr, "--workload", "stateful",
		"--conns", "2", "--concurrency", "8", "--duration", "1m", "--json", jsonPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graftlb bench after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("graftlb bench did not stop on SIGINT\n%s", out.String())
	}
	var r benchReport
	readJSON(t, jsonPath, &r)
	r.check(t, true)
	if !r.Interrupted {
		t.Fatalf("report does not say interrupted: %+v", r)
	}
}

// TestBenchCommandScenario runs a scenario through the command, whose
// processes are this same binary. The peers are pointed at binaries that do
// not exist (bench's own test runs them): the runs left are graftlb's, and
// the notes say why.
func TestBenchCommandScenario(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "compare.json")
	out, err := exec.Command(proctest.Binary(t), "bench", "--scenario", "compare", "--gateways", "2",
		"--haproxy", "/nonexistent/haproxy", "--nginx", "/nonexistent/nginx",
		"--conns", "2", "--concurrency", "4", "--duration", "300ms", "--json", jsonPath).CombinedOutput()
	if err != nil {
		t.Fatalf("graftlb bench --scenario compare: %v\n%s", err, out)
	}
	var sr struct {
		Scenario string        `json:"scenario"`
		Runs     []benchReport `json:"runs"`
		Events   []any         `json:"events"`
		Notes    []string      `json:"notes"`
	}
	readJSON(t, jsonPath, &sr)
	if sr.Scenario != "compare" || sr.Events == nil {
		t.Fatalf("scenario report %+v", sr)
	}
	var labels []string
	for _, r := range sr.Runs {
		r.check(t, false)
		labels = append(labels, *r.Label)
	}
	want := "direct,graftlb,graftlb-ws,graftlb-open,graftlb-ws-open"
	for _, peer := range []string{"haproxy", "nginx"} {
		if !strings.Contains(strings.Join(sr.Notes, " "), peer+" missing") {
			t.Fatalf("no %s and no note saying so: %v", peer, sr.Notes)
		}
	}
	if got := strings.Join(labels, ","); got != want {
		t.Fatalf("runs %s, want %s\n%s", got, want, out)
	}
}

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no target", nil, "exactly one of --target and --scenario"},
		{"both", []string{"--target", "tcp://127.0.0.1:1", "--scenario", "drain"}, "exactly one"},
		{"workload", []string{"--target", "tcp://127.0.0.1:1", "--workload", "heavy"}, "--workload"},
		{"scenario", []string{"--scenario", "chaos"}, `scenario "chaos"`},
		{"pools", []string{"--scenario", "scaleout", "--pools", "1,x"}, "--pools"},
		{"at", []string{"--scenario", "drain", "--duration", "2s", "--at", "3s"}, "is not before the end"},
		{"soak", []string{"--scenario", "soak", "--duration", "1m"}, "too short to judge"},
		{"plot", []string{"--target", "tcp://127.0.0.1:1", "--plot", "out.txt"}, "--plot"},
		{"argument", []string{"--target", "tcp://127.0.0.1:1", "extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runBench(tt.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q, want %q", stderr.String(), tt.want)
			}
		})
	}
}
