package bench

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// sampled10s samples f every 10s for d, with a deterministic jitter of up to
// ±noise added to each value.
func sampled10s(d time.Duration, noise float64, f func(t time.Duration) float64) []point {
	rng := rand.New(rand.NewPCG(1, 2))
	var pts []point
	for t := time.Duration(0); t <= d; t += 10 * time.Second {
		pts = append(pts, point{t: t.Milliseconds(), v: f(t) + noise*(2*rng.Float64()-1)})
	}
	return pts
}

const mb = 1 << 20

// TestGrowthCriterion: on synthetic 30-minute series sampled every 10s
// and judged from minute 5, a leak is caught, and neither a sawtooth (a
// heap between collections, whatever its period against the sampling), a
// plateau reached early in the window, noise, nor spikes are.
func TestGrowthCriterion(t *testing.T) {
	const from = 5 * 60 * 1000 // ms
	sawtooth := func(period time.Duration, low, high float64) func(time.Duration) float64 {
		return func(t time.Duration) float64 {
			phase := float64(t%period) / float64(period)
			return low + (high-low)*phase
		}
	}
	cases := []struct {
		name   string
		metric string
		pts    []point
		tol    Tolerance
		want   string
	}{
		{"rss leak of 1.5MB/min", MetricRSS, sampled10s(30*time.Minute, 2*mb, func(t time.Duration) float64 {
			return 40*mb + 1.5*mb*t.Minutes()
		}), DefaultRSSTolerance, VerdictGrowing},
		{"goroutine leak of 2/min", MetricGoroutines, sampled10s(30*time.Minute, 5, func(t time.Duration) float64 {
			return 60 + 2*t.Minutes()
		}), DefaultGoroutinesTolerance, VerdictGrowing},
		{"fd leak of one a minute with spikes", MetricFDs, spikes(sampled10s(30*time.Minute, 2, func(t time.Duration) float64 {
			return 30 + t.Minutes()
		}), 7, 40), DefaultFDsTolerance, VerdictGrowing},
		{"rss sawtooth, 65s period", MetricRSS, sampled10s(30*time.Minute, 0, sawtooth(65*time.Second, 40*mb, 70*mb)),
			DefaultRSSTolerance, VerdictBounded},
		{"rss sawtooth, 10s period (the sampling's)", MetricRSS, sampled10s(30*time.Minute, 0, sawtooth(10*time.Second+time.Millisecond, 40*mb, 70*mb)),
			DefaultRSSTolerance, VerdictBounded},
		{"heap sawtooth, 4 minutes period", MetricRSS, sampled10s(30*time.Minute, mb, sawtooth(4*time.Minute, 20*mb, 45*mb)),
			DefaultRSSTolerance, VerdictBounded},
		{"goroutines plateau reached in the window's first third", MetricGoroutines, sampled10s(30*time.Minute, 3, func(t time.Duration) float64 {
			return 60 + 100*min(t.Minutes(), 10)/10 // rises until minute 10, then flat
		}), DefaultGoroutinesTolerance, VerdictBounded},
		{"rss plateau with noise", MetricRSS, sampled10s(30*time.Minute, 3*mb, func(time.Duration) float64 { return 50 * mb }),
			DefaultRSSTolerance, VerdictBounded},
		{"rss plateau with spikes", MetricRSS, spikes(sampled10s(30*time.Minute, mb, func(time.Duration) float64 { return 50 * mb }), 11, 60*mb),
			DefaultRSSTolerance, VerdictBounded},
		{"rss leak under the tolerance (0.2MB/min)", MetricRSS, sampled10s(30*time.Minute, 0, func(t time.Duration) float64 {
			return 40*mb + 0.2*mb*t.Minutes()
		}), DefaultRSSTolerance, VerdictBounded},
		{"too few samples", MetricFDs, sampled10s(5*time.Minute+40*time.Second, 0, func(t time.Duration) float64 { return t.Minutes() * 100 }),
			DefaultFDsTolerance, VerdictInconclusive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := judgeGrowth(c.metric, c.pts, from, c.tol)
			if g.Verdict != c.want {
				t.Fatalf("verdict %s, want %s: %s", g.Verdict, c.want, g)
			}
			if g.FromMs != from || g.Samples == 0 || g.ToMs != c.pts[len(c.pts)-1].t {
				t.Fatalf("window %d..%d with %d samples: %s", g.FromMs, g.ToMs, g.Samples, g)
			}
			t.Log(g)
		})
	}
}

// spikes sets every k-th point to v (a one-sample outlier: a GC peak, a
// burst of connections).
func spikes(pts []point, k int, v float64) []point {
	for i := k; i < len(pts); i += k {
		pts[i].v = v
	}
	return pts
}

// TestGrowthFigures: the figures a growth check reports are the
// criterion's: thirds' medians, the Theil–Sen slope and the growth it
// makes over the window, the tolerance.
func TestGrowthFigures(t *testing.T) {
	pts := sampled10s(10*time.Minute, 0, func(t time.Duration) float64 { return 100 + 10*t.Minutes() })
	pts[10].v = 1e6 // one outlier moves neither the slope nor M1 much
	g := judgeGrowth(MetricGoroutines, pts, 0, Tolerance{Rel: 0.5, Abs: 1})
	if math.Abs(g.SlopePerMin-10) > 1e-9 || math.Abs(g.Growth-100) > 1e-9 {
		t.Fatalf("slope %v/min, growth %v: want 10 and 100", g.SlopePerMin, g.Growth)
	}
	// 61 samples: thirds of 20, 21 and 20, from t=0, 200s and 410s; the
	// outlier in the first makes its median the value at 100s.
	if want := [3]float64{100 + 10*100.0/60, 100 + 10*300.0/60, 100 + 10*505.0/60}; !near(g.Medians, want) {
		t.Fatalf("medians %v, want %v", g.Medians, want)
	}
	if g.Tolerance != 0.5*g.Medians[0] || g.Max != 1e6 || g.Verdict != VerdictGrowing {
		t.Fatalf("tolerance %v (want half of M1 %v), max %v, verdict %s", g.Tolerance, g.Medians[0], g.Max, g.Verdict)
	}
	if s := g.String(); !strings.Contains(s, "goroutines growing: 61 samples from 0s to 600s") {
		t.Fatalf("String() = %s", s)
	}
}

func near(a, b [3]float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}

// TestJudgeSoak: a soak whose table never filled is inconclusive, and one
// process growing makes the soak's verdict growing, with a violation
// naming it.
func TestJudgeSoak(t *testing.T) {
	flat := func(v int64) []Sample {
		var ss []Sample
		for i := range 30 {
			rss, g, fds := v, int64(50), int64(20)
			ss = append(ss, Sample{TMs: int64(i) * 10000, RSS: &rss, Goroutines: &g, FDs: &fds})
		}
		return ss
	}
	procs := func() []*ProcSeries {
		return []*ProcSeries{{Name: "graftlb", Role: "proxy", Samples: flat(40 * mb)}, {Name: "gw1", Role: "gateway", Samples: flat(30 * mb)}}
	}
	sr := &SoakReport{MaxSessions: 100, Processes: procs()}
	if v := judgeSoak(sr, nil, 30*time.Second, 5*time.Minute); sr.Verdict != VerdictInconclusive || len(v) != 1 || !strings.Contains(v[0], "never filled") {
		t.Fatalf("table never full: verdict %s, violations %v", sr.Verdict, v)
	}
	full := int64(20000)
	sr = &SoakReport{MaxSessions: 100, Processes: procs()}
	if v := judgeSoak(sr, &full, 30*time.Second, 5*time.Minute); sr.Verdict != VerdictBounded || len(v) != 0 || sr.WindowFromMs != 100000 {
		t.Fatalf("flat: verdict %s, window from %d, violations %v", sr.Verdict, sr.WindowFromMs, v)
	}
	if n := len(sr.Processes[1].Checks); n != 3 {
		t.Fatalf("gw1 has %d checks, want rss, goroutines and fds", n)
	}
	sr = &SoakReport{MaxSessions: 100, Processes: procs()}
	for i := range sr.Processes[1].Samples {
		n := int64(20 + i)
		sr.Processes[1].Samples[i].FDs = &n // an fd a sample
	}
	v := judgeSoak(sr, &full, 30*time.Second, 5*time.Minute)
	if sr.Verdict != VerdictGrowing || len(v) != 1 || !strings.Contains(v[0], "gw1: fds growing") {
		t.Fatalf("gw1 leaking fds: verdict %s, violations %v", sr.Verdict, v)
	}
}

// TestSoakDurationValidated: a soak too short to judge is refused before
// it starts, saying how long it must be.
func TestSoakDurationValidated(t *testing.T) {
	err := Scenario{Name: "soak", Binary: "graftlb", Load: Config{Duration: time.Minute}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "want at least 2m0s") {
		t.Fatalf("a one-minute soak with the defaults: %v", err)
	}
	sc := Scenario{Name: "soak", Binary: "graftlb", SessionIdle: 15 * time.Second, SampleEvery: 5 * time.Second, Load: Config{Duration: 2 * time.Minute}}
	if err := sc.Validate(); err != nil {
		t.Fatalf("the 2-minute soak of make test: %v", err)
	}
}

// TestProcReadings reads this process's RSS and open fds from /proc.
func TestProcReadings(t *testing.T) {
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS %d, %v", rss, err)
	}
	fds, err := procFDs(os.Getpid())
	if err != nil || fds < 3 {
		t.Fatalf("fds %d, %v", fds, err)
	}
	if _, err := procRSS(-1); err == nil {
		t.Fatal("RSS of no process: no error")
	}
}
