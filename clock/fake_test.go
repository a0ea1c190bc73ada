package clock

import (
	"testing"
	"time"
)

func TestFakeTickerFiresInOrder(t *testing.T) {
	f := NewFake()
	start := f.Now()
	tk := f.NewTicker(time.Second)
	defer tk.Stop()
	tm := f.NewTimer(1500 * time.Millisecond)

	f.Advance(time.Second)
	if got := <-tk.C(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("ticker fired at %v, want %v", got, start.Add(time.Second))
	}
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	f.Advance(time.Second)
	if got := <-tm.C(); !got.Equal(start.Add(1500 * time.Millisecond)) {
		t.Fatalf("timer fired at %v", got)
	}
	if got := <-tk.C(); !got.Equal(start.Add(2 * time.Second)) {
		t.Fatalf("ticker second fire at %v", got)
	}
	if tm.Stop() {
		t.Fatal("Stop on a fired timer reported true")
	}
	tm.Reset(time.Second)
	if f.Waiters() != 2 {
		t.Fatalf("Waiters = %d, want 2", f.Waiters())
	}
	if !tm.Stop() {
		t.Fatal("Stop on an armed timer reported false")
	}
	if !f.Now().Equal(start.Add(2 * time.Second)) {
		t.Fatalf("Now = %v", f.Now())
	}
}
