package bench

import (
	"fmt"
	"math"
	"slices"
)

// Verdicts of a growth check and of a soak.
const (
	VerdictBounded      = "bounded"
	VerdictGrowing      = "growing"
	VerdictInconclusive = "inconclusive"
)

// minWindowSamples is the fewest samples a growth check judges: two in each
// third of the window.
const minWindowSamples = 6

// Tolerance is how much a resource may rise over a soak's window without
// counting as growth: Rel of its level (the median of the window's first
// third) or Abs, whichever is larger. Abs keeps small levels (a few file
// descriptors, a few MB) from failing on a change of one connection or one
// GC cycle.
type Tolerance struct {
	Rel float64 `json:"rel"`
	Abs float64 `json:"abs"`
}

// Default tolerances of the soak's checks. RSS's floor is above what the
// soak's two slow readers can hold at once (2 MiB of queued replies each,
// the proxy's --max-pending-write, plus the frame being read), which the
// garbage collector lets double before it collects.
var (
	DefaultRSSTolerance        = Tolerance{Rel: 0.10, Abs: 16 << 20}
	DefaultGoroutinesTolerance = Tolerance{Rel: 0.10, Abs: 25}
	DefaultFDsTolerance        = Tolerance{Rel: 0.10, Abs: 10}
)

// Growth is the judgement of one series (a process's RSS, goroutines or
// open fds) over a soak's window.
//
// The criterion: split the window's samples, in time order, into three
// thirds and take the median of each (M1, M2, M3); take the Theil–Sen
// slope of the whole window (the median of the slopes between every two
// samples, which a few outliers cannot move) and the growth it makes over
// the window, Growth = slope × window length. With Tol the tolerance at
// level M1, the series is growing when both
//
//	Growth > Tol        it rose by more than the tolerance over the window, and
//	M3 − M2 > Tol / 3   it is still rising in the last third
//
// (a steady leak of Growth over the window puts M3 about Growth/3 above M2).
// A sawtooth (a heap between collections, connections opened and closed)
// has a slope and third medians near zero whatever its phase at the
// samples; a plateau has both at zero; a rise that stopped before the last
// third (the table filling, the runtime sizing its heap once) fails the
// second condition. Fewer than minWindowSamples samples are inconclusive.
type Growth struct {
	Metric  string `json:"metric"`
	Verdict string `json:"verdict"`
	// FromMs and ToMs bound the window (ms since the start of the load);
	// Samples is the number of samples in it.
	FromMs  int64 `json:"from_ms"`
	ToMs    int64 `json:"to_ms"`
	Samples int   `json:"samples"`
	// Medians are M1, M2 and M3; Max is the highest sample of the window.
	Medians [3]float64 `json:"medians"`
	Max     float64    `json:"max"`
	// SlopePerMin is the Theil–Sen slope, per minute; Growth is the slope
	// over the window; Tolerance is Tol.
	SlopePerMin float64 `json:"slope_per_min"`
	Growth      float64 `json:"growth"`
	Tolerance   float64 `json:"tolerance"`
}

// point is one sample of a series: time (ms) and value.
type point struct {
	t int64
	v float64
}

// judgeGrowth applies the criterion of Growth to the points of one metric
// (in time order) that fall at or after fromMs.
func judgeGrowth(metric string, pts []point, fromMs int64, tol Tolerance) Growth {
	g := Growth{Metric: metric, FromMs: fromMs, Verdict: VerdictInconclusive}
	i, _ := slices.BinarySearchFunc(pts, fromMs, func(p point, t int64) int { return int(p.t - t) })
	w := pts[i:]
	g.Samples = len(w)
	if len(w) == 0 {
		return g
	}
	g.ToMs = w[len(w)-1].t
	for _, p := range w {
		g.Max = max(g.Max, p.v)
	}
	if len(w) < minWindowSamples {
		return g
	}
	n := len(w)
	thirds := [4]int{0, n / 3, n - n/3, n}
	for k := range 3 {
		g.Medians[k] = medianOf(w[thirds[k]:thirds[k+1]])
	}
	slope := theilSen(w) // per ms
	g.SlopePerMin = slope * 60e3
	g.Growth = slope * float64(w[n-1].t-w[0].t)
	g.Tolerance = max(tol.Rel*g.Medians[0], tol.Abs)
	g.Verdict = VerdictBounded
	if g.Growth > g.Tolerance && g.Medians[2]-g.Medians[1] > g.Tolerance/3 {
		g.Verdict = VerdictGrowing
	}
	return g
}

// String says the judgement in one line, for violations and logs.
func (g Growth) String() string {
	return fmt.Sprintf("%s %s: %d samples from %.0fs to %.0fs, thirds' medians %s / %s / %s, slope %s/min, growth %s over the window (tolerance %s)",
		g.Metric, g.Verdict, g.Samples, float64(g.FromMs)/1e3, float64(g.ToMs)/1e3,
		fmtMetric(g.Metric, g.Medians[0]), fmtMetric(g.Metric, g.Medians[1]), fmtMetric(g.Metric, g.Medians[2]),
		fmtMetric(g.Metric, g.SlopePerMin), fmtMetric(g.Metric, g.Growth), fmtMetric(g.Metric, g.Tolerance))
}

// fmtMetric formats a value of metric: bytes as MB, counts as numbers.
func fmtMetric(metric string, v float64) string {
	if metric == MetricRSS {
		return fmt.Sprintf("%.1fMB", v/1e6)
	}
	return fmt.Sprintf("%.1f", v)
}

func medianOf(pts []point) float64 {
	vs := make([]float64, len(pts))
	for i, p := range pts {
		vs[i] = p.v
	}
	return median(vs)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	slices.Sort(vs)
	m := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[m]
	}
	return (vs[m-1] + vs[m]) / 2
}

// theilSen returns the median of the slopes between every two points of
// distinct times (Theil 1950, Sen 1968): a line fit that up to 29% of
// outliers cannot move, unlike least squares. 180 samples (30 minutes every
// 10s) make 16,110 pairs.
func theilSen(pts []point) float64 {
	slopes := make([]float64, 0, len(pts)*(len(pts)-1)/2)
	for i := range pts {
		for j := i + 1; j < len(pts); j++ {
			if dt := pts[j].t - pts[i].t; dt > 0 {
				slopes = append(slopes, (pts[j].v-pts[i].v)/float64(dt))
			}
		}
	}
	if len(slopes) == 0 {
		return 0
	}
	return median(slopes)
}
