package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// prometheusServer is a real Prometheus (Debian's package, scripts/deps.txt)
// scraping targets every second, with its storage in a temporary
// directory.
type prometheusServer struct {
	base string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

func startPrometheus(t *testing.T, jobs map[string][]string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (make deps installs it): %v", err)
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for job, targets := range jobs {
		q := make([]string, len(targets))
		for i, tg := range targets {
			q[i] = strconv.Quote(tg)
		}
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", job, strings.Join(q, ", "))
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Prometheus takes no port 0: take a free port and hand it over.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ps := &prometheusServer{base: "http://" + addr}
	ps.cmd = exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	ps.cmd.Stdout, ps.cmd.Stderr = &ps.out, &ps.out
	if err := ps.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ps.cmd.Process.Kill()
		_ = ps.cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", ps.out.String())
		}
	})
	err = waitCtx(context.Background(), 20*time.Second, func() (bool, error) {
		resp, err := http.Get(ps.base + "/-/ready")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("prometheus not ready: %v\n%s", err, ps.out.String())
	}
	return ps
}

// query runs an instant PromQL query and returns its vector as the value by
// the given label.
func (ps *prometheusServer) query(q, by string) (map[string]float64, error) {
	resp, err := http.Get(ps.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
		out[s.Metric[by]] = v
	}
	return out, nil
}

// promtoolCheck runs `promtool check metrics` on an endpoint's output.
func promtoolCheck(t *testing.T, endpoint string) {
	t.Helper()
	body := httpGet(t, endpoint)
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics %s: %v\n%s", endpoint, err, out)
	}
}

// TestPrometheusScrapesProxyAndGateways (issue 14): a real Prometheus
// scrapes a proxy under load and its three gateways every second; its
// query API shows calls/s for every gateway, and once one gateway is
// SIGKILLed, graftlb_sessions_lost_total of that gateway equals the
// sessions the clients saw lost. promtool accepts both endpoints.
func TestPrometheusScrapesProxyAndGateways(t *testing.T) {
	names := []string{"gw1", "gw2", "gw3"}
	c := newStaticCluster(t, names)
	var gwTargets []string
	for _, n := range names {
		gwTargets = append(gwTargets, c.gws[n].Addr.HTTP)
	}
	ps := startPrometheus(t, map[string][]string{"graftlb-proxy": {c.proxy.Addr.Admin}, "graftlb-gateway": gwTargets})

	conn := dialT(t, "tcp://"+c.proxy.Addr.TCP)
	sessions := openSessions(t, conn, 60, names)
	load := startStatelessLoad(t, conn, 4, true)
	defer load.halt()

	var rates map[string]float64
	err := waitCtx(context.Background(), 20*time.Second, func() (bool, error) {
		var err error
		rates, err = ps.query(`sum(rate(graftlb_calls_total{job="graftlb-proxy"}[5s])) by (gateway)`, "gateway")
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if rates[n] <= 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("Prometheus never showed calls/s for every gateway: %v (last %s)", err, joinSorted(rates))
	}
	t.Logf("calls/s by gateway, from Prometheus: %s", joinSorted(rates))
	var gwRates map[string]float64
	err = waitCtx(context.Background(), 10*time.Second, func() (bool, error) {
		var err error
		gwRates, err = ps.query(`sum(rate(graftlb_gateway_calls_total{code="OK"}[5s])) by (gateway)`, "gateway")
		return err == nil && len(gwRates) == len(names), err
	})
	if err != nil {
		t.Errorf("gateway-side calls/s %s: want all three gateways: %v", joinSorted(gwRates), err)
	}

	promtoolCheck(t, "http://"+c.proxy.Addr.Admin+"/metrics")
	promtoolCheck(t, "http://"+c.gws["gw1"].Addr.HTTP+"/metrics")

	victim := "gw2"
	c.gws[victim].Kill()
	observed := lostOf(t, sessions, victim)
	if observed == 0 {
		t.Fatalf("no session was lost with %s", victim)
	}
	var lost map[string]float64
	err = waitCtx(context.Background(), 15*time.Second, func() (bool, error) {
		var err error
		lost, err = ps.query(`graftlb_sessions_lost_total{job="graftlb-proxy"}`, "gateway")
		return err == nil && lost[victim] == float64(observed), err
	})
	if err != nil {
		t.Errorf("graftlb_sessions_lost_total{gateway=%q} = %v in Prometheus, want %d (what the clients saw): %v",
			victim, lost[victim], observed, err)
	}
	for _, n := range names {
		if n != victim && lost[n] != 0 {
			t.Errorf("graftlb_sessions_lost_total{gateway=%q} = %v, want 0", n, lost[n])
		}
	}
	up, err := ps.query(`graftlb_gateway_up`, "gateway")
	if err != nil || up[victim] != 0 {
		t.Errorf("graftlb_gateway_up after the kill: %v, %v: want %s at 0", up, err, victim)
	}
}
