//go:build !race

package affinity

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHotPathAllocs proves that the per-key functions allocate nothing once
// their buffers are grown. (The race detector adds allocations, hence the
// build tag.)
func TestHotPathAllocs(t *testing.T) {
	const n = 20
	tb := mustTable(t, UniformMembers(memberNames(n)...))
	keys := sessionKeys(64, 15)
	dst := make([]int, 0, n)
	loads := make([]int64, n)
	down := make([]bool, n)
	for i := range down {
		down[i] = i%4 != 0 // most members refuse, so walks reach the tail
	}
	ok := func(m int) bool { return !down[m] }
	var id [16]byte

	var req fasthttp.Request
	req.SetRequestURI("/ws?session=s-1")
	req.Header.Set("X-Session", "h-1")
	req.Header.SetCookie("sid", "c-1")
	uri := req.URI()
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5000}
	buf := make([]byte, 0, 64)

	i := 0
	next := func() uint64 { i++; return keys[i%len(keys)] }
	tests := []struct {
		name string
		f    func()
	}{
		{"HashSession", func() { id[0]++; _ = HashSession(id) }},
		{"Lookup", func() { _ = tb.Lookup(next()) }},
		{"Owner nil ok", func() { tb.Owner(next(), nil) }},
		{"Owner walk", func() { tb.Owner(next(), ok) }},
		{"Preference", func() { dst = tb.Preference(next(), dst) }},
		{"BoundedOwner", func() {
			m, _ := tb.BoundedOwner(next(), loads, 0.25, ok)
			loads[m]++
		}},
	}
	for _, src := range []string{"query:session", "header:X-Session", "cookie:sid", "addr", "header:Missing"} {
		ks, err := ParseKeySource(src)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			f    func()
		}{"Extract " + src, func() { buf, _ = ks.Extract(buf[:0], &req.Header, uri, remote); _ = HashKey(buf) }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(1000, tt.f); a != 0 {
				t.Errorf("%s: %v allocations per run, want 0", tt.name, a)
			}
		})
	}
}
