package health

import (
	"testing"
)

func BenchmarkRecorderSuccess(b *testing.B) {
	d, _ := NewDetector(OutlierConfig{})
	r, _ := d.Add("gw1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Success()
		}
	})
}

func BenchmarkRecorderMixed(b *testing.B) {
	d, _ := NewDetector(OutlierConfig{ConsecutiveFailures: -1})
	r, _ := d.Add("gw1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if i++; i%10 == 0 {
				r.Failure()
			} else {
				r.Success()
			}
		}
	})
}

func BenchmarkBreakerAllowDone(b *testing.B) {
	br, _ := NewBreaker("gw1", Settings{MaxConcurrent: 1 << 20})
	b.ReportAllocs()
	for b.Loop() {
		t, _ := br.Allow()
		br.Done(t, true)
	}
}

func BenchmarkBreakerAllowDoneParallel(b *testing.B) {
	br, _ := NewBreaker("gw1", Settings{MaxConcurrent: 1 << 20})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t, _ := br.Allow()
			br.Done(t, true)
		}
	})
}

func BenchmarkBreakerAllowOpenParallel(b *testing.B) {
	br, _ := NewBreaker("gw1", Settings{})
	for range 30 {
		t, _ := br.Allow()
		br.Done(t, false)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := br.Allow(); err == nil {
				b.Error("admitted while open")
			}
		}
	})
}
