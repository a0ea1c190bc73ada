package balancer

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkForwardLocks forwards calls from many client connections at
// once (4 per core, 64 calls in flight each, over 3 gateways) and counts,
// from the mutex profile, the lock waits per forwarded call: how often a
// goroutine found a lock of this process held (mutex-waits/op). A lock
// that all clients of a gateway share on the steady path shows up here
// first. Run with -v to see where the waits are, by the function that held
// the lock:
//
//	go test -run '^$' -bench ForwardLocks -cpu 1,2,4 -v ./balancer/
func BenchmarkForwardLocks(b *testing.B) {
	for _, stateless := range []bool{true, false} {
		name := "stateful"
		if stateless {
			name = "stateless"
		}
		b.Run(name, func(b *testing.B) {
			p := echoProxy(b, 3)
			const perCore, window = 4, 64
			clients := make([]*rawClient, perCore*runtime.GOMAXPROCS(0))
			for i := range clients {
				clients[i] = dialRaw(b, p.Addrs().TCP, stateless)
				for id := 1; id <= window; id++ {
					if err := clients[i].send(uint32(id)); err != nil {
						b.Fatal(err)
					}
				}
			}
			var next atomic.Int32
			prev := runtime.SetMutexProfileFraction(1)
			defer runtime.SetMutexProfileFraction(prev)
			before := mutexWaits()
			b.ReportAllocs()
			b.SetParallelism(perCore)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := clients[next.Add(1)-1]
				for pb.Next() {
					id, err := c.recv()
					if err == nil {
						err = c.send(id)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			after := mutexWaits()
			var total int64
			var sites []siteWaits
			for site, n := range after {
				if d := n - before[site]; d > 0 {
					total += d
					sites = append(sites, siteWaits{site, d})
				}
			}
			b.ReportMetric(float64(total)/float64(b.N), "mutex-waits/op")
			slices.SortFunc(sites, func(x, y siteWaits) int { return cmp.Compare(y.n, x.n) })
			var top strings.Builder
			for _, s := range sites[:min(len(sites), 6)] {
				fmt.Fprintf(&top, "\n  %.4f/op %s", float64(s.n)/float64(b.N), s.site)
			}
			b.Logf("N=%d, lock waits by holder:%s", b.N, top.String())
			for _, c := range clients {
				for range window {
					_, _ = c.recv()
				}
			}
		})
	}
}

type siteWaits struct {
	site string
	n    int64
}

var mutexRecords = struct {
	sync.Mutex
	buf []runtime.BlockProfileRecord
}{}

// mutexWaits returns the contention events of the mutex profile so far by
// the first function outside the sync and runtime packages in the
// record's stack (the one that held the lock).
func mutexWaits() map[string]int64 {
	mutexRecords.Lock()
	defer mutexRecords.Unlock()
	n, ok := runtime.MutexProfile(mutexRecords.buf)
	for !ok {
		mutexRecords.buf = make([]runtime.BlockProfileRecord, n+64)
		n, ok = runtime.MutexProfile(mutexRecords.buf)
	}
	out := map[string]int64{}
	for _, r := range mutexRecords.buf[:n] {
		out[holder(r.Stack())] += r.Count
	}
	return out
}

func holder(stack []uintptr) string {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "sync.") && !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/") {
			return f.Function
		}
		if !more {
			return "?"
		}
	}
}
