package bench

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metrics a soak samples (Sample's fields).
const (
	MetricRSS        = "rss"
	MetricGoroutines = "goroutines"
	MetricFDs        = "fds"
)

// Sample is what one process used at one time. RSS and FDs come from
// /proc/PID/status (VmRSS) and /proc/PID/fd; Goroutines, HeapInuse and
// Sessions from the process's Prometheus /metrics (go_goroutines,
// go_memstats_heap_inuse_bytes, and graftlb_sessions for a proxy's table or
// graftlb_gateway_sessions_held for a gateway). A value that could not be
// read is absent (nil), and the error is counted in its ProcSeries.
type Sample struct {
	TMs        int64    `json:"t_ms"`
	RSS        *int64   `json:"rss_bytes,omitempty"`
	FDs        *int64   `json:"fds,omitempty"`
	Goroutines *int64   `json:"goroutines,omitempty"`
	HeapInuse  *int64   `json:"heap_inuse_bytes,omitempty"`
	Sessions   *float64 `json:"sessions,omitempty"`
}

// ProcSeries is the samples of one process over a soak, and the judgement
// of each metric (Growth) once the soak has ended.
type ProcSeries struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"` // proxy or gateway
	PID     int      `json:"pid"`
	Samples []Sample `json:"samples"`
	// Errors counts the readings that failed (a scrape that timed out);
	// FirstError is the first one's message.
	Errors     int      `json:"errors,omitempty"`
	FirstError string   `json:"first_error,omitempty"`
	Checks     []Growth `json:"checks,omitempty"`
}

// points returns the series of one metric, skipping absent values.
func (ps *ProcSeries) points(metric string) []point {
	var out []point
	for _, s := range ps.Samples {
		var v *int64
		switch metric {
		case MetricRSS:
			v = s.RSS
		case MetricGoroutines:
			v = s.Goroutines
		case MetricFDs:
			v = s.FDs
		}
		if v != nil {
			out = append(out, point{t: s.TMs, v: float64(*v)})
		}
	}
	return out
}

// sampled is a process the sampler watches: its /metrics address and the
// family that counts its sessions.
type sampled struct {
	proc        *Proc
	metricsURL  string
	sessionsKey string
	series      *ProcSeries
}

// sampler reads every process's Sample every period, from when it starts
// until stop.
type sampler struct {
	start time.Time
	every time.Duration
	procs []*sampled
	hc    *http.Client

	mu   sync.Mutex // guards the series' samples while the sampler runs
	stop chan struct{}
	done chan struct{}
}

// newSampler samples proxy (its admin /metrics) and gateways (their --http
// /metrics) every period, times counted from start.
func newSampler(start time.Time, every time.Duration, proxy *Proc, gateways []*Proc) *sampler {
	s := &sampler{start: start, every: every, stop: make(chan struct{}), done: make(chan struct{}),
		hc: &http.Client{Timeout: min(every, 5*time.Second)}}
	add := func(p *Proc, role, addr, key string) {
		s.procs = append(s.procs, &sampled{proc: p, metricsURL: "http://" + addr + "/metrics", sessionsKey: key,
			series: &ProcSeries{Name: p.Name, Role: role, PID: p.PID(), Samples: []Sample{}}})
	}
	add(proxy, "proxy", proxy.Addr.Admin, "graftlb_sessions")
	for _, g := range gateways {
		add(g, "gateway", g.Addr.HTTP, "graftlb_gateway_sessions_held")
	}
	return s
}

// run samples at once, then every period until halt.
func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sampleAll()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// halt stops the sampler and returns the series.
func (s *sampler) halt() []*ProcSeries {
	close(s.stop)
	<-s.done
	s.hc.CloseIdleConnections()
	out := make([]*ProcSeries, len(s.procs))
	for i, p := range s.procs {
		out[i] = p.series
	}
	return out
}

// latest returns the last sample of process i (false if none yet).
func (s *sampler) latest(i int) (Sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.procs[i].series.Samples
	if len(ss) == 0 {
		return Sample{}, false
	}
	return ss[len(ss)-1], true
}

func (s *sampler) sampleAll() {
	for _, p := range s.procs {
		if p.proc.Exited() {
			continue
		}
		smp, errs := p.sample(s.hc, time.Since(s.start))
		s.mu.Lock()
		p.series.Samples = append(p.series.Samples, smp)
		for _, err := range errs {
			if p.series.Errors == 0 {
				p.series.FirstError = err.Error()
			}
			p.series.Errors++
		}
		s.mu.Unlock()
	}
}

// sample reads one Sample of the process.
func (p *sampled) sample(hc *http.Client, at time.Duration) (Sample, []error) {
	smp := Sample{TMs: at.Milliseconds()}
	var errs []error
	pid := p.proc.PID()
	if v, err := procRSS(pid); err == nil {
		smp.RSS = &v
	} else {
		errs = append(errs, err)
	}
	if v, err := procFDs(pid); err == nil {
		smp.FDs = &v
	} else {
		errs = append(errs, err)
	}
	m, err := scrapeGauges(hc, p.metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes", p.sessionsKey)
	if err != nil {
		return smp, append(errs, err)
	}
	if v, ok := m["go_goroutines"]; ok {
		n := int64(v)
		smp.Goroutines = &n
	} else {
		errs = append(errs, fmt.Errorf("%s: no go_goroutines", p.metricsURL))
	}
	if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
		n := int64(v)
		smp.HeapInuse = &n
	}
	if v, ok := m[p.sessionsKey]; ok {
		smp.Sessions = &v
	}
	return smp, errs
}

// procRSS reads the resident set of pid, in bytes, from the VmRSS line of
// /proc/PID/status (proc(5)).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS in kB", pid)
}

// procFDs counts the open file descriptors of pid: the entries of
// /proc/PID/fd.
func procFDs(pid int) (int64, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, err
	}
	return int64(len(ents)), nil
}

// scrapeGauges reads url (a Prometheus text exposition) and returns the
// value of each named family that is there, summed over its series
// (gauges and untyped).
func scrapeGauges(hc *http.Client, url string, names ...string) (map[string]float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	out := map[string]float64{}
	for _, name := range names {
		mf := mfs[name]
		if mf == nil {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Untyped != nil:
				sum += m.Untyped.GetValue()
			}
		}
		out[name] = sum
	}
	return out, nil
}
