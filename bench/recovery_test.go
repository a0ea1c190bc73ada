package bench

import (
	"testing"
	"time"
)

func series(oks ...int64) []Bucket {
	out := make([]Bucket, len(oks))
	for i, ok := range oks {
		out[i] = Bucket{TMs: int64(i) * 100, OK: ok}
	}
	return out
}

func TestRecovery(t *testing.T) {
	const w = 100 * time.Millisecond
	tests := []struct {
		name   string
		series []Bucket
		ev     time.Duration
		end    time.Duration
		wantMs float64
		wantOK bool
	}{
		{"no dip", series(50, 100, 100, 100, 100, 95, 100, 100), 350 * time.Millisecond, 800 * time.Millisecond, 0, true},
		// Level 90 (the warm-up bucket left out); buckets 4 and 5 average
		// 20, buckets 6-7 average 100: back at 600ms, 250ms after the event.
		{"dip and back", series(10, 100, 100, 100, 10, 30, 100, 100), 350 * time.Millisecond, 800 * time.Millisecond, 250, true},
		{"one noisy bucket is smoothed away", series(100, 100, 100, 100, 100, 85, 100, 100), 350 * time.Millisecond, 800 * time.Millisecond, 0, true},
		{"never back", series(100, 100, 100, 100, 0, 0, 0, 0), 350 * time.Millisecond, 800 * time.Millisecond, 450, false},
		{"buckets after the end do not count", series(100, 100, 100, 100, 0, 0, 100, 100), 350 * time.Millisecond, 600 * time.Millisecond, 250, false},
		{"a later dip is not the event's", series(100, 100, 100, 100, 100, 100, 20, 20), 350 * time.Millisecond, 800 * time.Millisecond, 0, true},
		{"event in the first bucket", series(100, 0, 0), 50 * time.Millisecond, 300 * time.Millisecond, 0, true},
		{"event after the series", series(100, 100), time.Second, 2 * time.Second, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, ok := recovery(tt.series, w, tt.ev, tt.end)
			if ms != tt.wantMs || ok != tt.wantOK {
				t.Fatalf("recovery = %vms, %v; want %vms, %v", ms, ok, tt.wantMs, tt.wantOK)
			}
		})
	}
}
