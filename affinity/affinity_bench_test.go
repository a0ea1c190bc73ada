package affinity

import (
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

var benchSizes = []int{3, 10, 100}

// BenchmarkNewTable measures building a table, which happens on every
// membership or weight change, never per call.
func BenchmarkNewTable(b *testing.B) {
	for _, n := range append(benchSizes, 1000) {
		ms := UniformMembers(memberNames(n)...)
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewTable(ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLookup is the Maglev owner of a session key: one multiply and one
// read of a 128 KiB table. Keys cycle through 4096 sessions so the table is
// read at random places, as in production.
func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		tb := mustTable(b, UniformMembers(memberNames(n)...))
		keys := sessionKeys(4096, 16)
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = tb.Lookup(keys[i&4095])
				i++
			}
		})
	}
}

// BenchmarkLookupParallel is Lookup from all cores at once: the table is
// shared read-only, so it scales without contention.
func BenchmarkLookupParallel(b *testing.B) {
	tb := mustTable(b, UniformMembers(memberNames(10)...))
	keys := sessionKeys(4096, 17)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_ = tb.Lookup(keys[i&4095])
			i++
		}
	})
}

// BenchmarkHashSessionLookup is what the balancer does for a stateful call:
// hash the session id, then look it up.
func BenchmarkHashSessionLookup(b *testing.B) {
	tb := mustTable(b, UniformMembers(memberNames(10)...))
	var id [16]byte
	b.ReportAllocs()
	for b.Loop() {
		id[0]++
		_ = tb.Lookup(HashSession(id))
	}
}

// BenchmarkOwner walks the preference list with an ok callback. "all ok" is
// the common case; "1 in 4 ok" makes most walks take several steps and some
// reach the rendezvous tail; "none ok" is the worst case, a full walk.
func BenchmarkOwner(b *testing.B) {
	for _, n := range benchSizes {
		tb := mustTable(b, UniformMembers(memberNames(n)...))
		keys := sessionKeys(4096, 18)
		down := make([]bool, n)
		ok := func(m int) bool { return !down[m] }
		for _, c := range []struct {
			name  string
			every int // every member m with m%every != 0 is down; 1 = all ok
		}{{"all ok", 1}, {"1 in 4 ok", 4}, {"none ok", 0}} {
			for m := range down {
				down[m] = c.every == 0 || m%c.every != 0
			}
			b.Run("members="+strconv.Itoa(n)+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					tb.Owner(keys[i&4095], ok)
					i++
				}
			})
		}
	}
}

// BenchmarkPreference computes complete preference lists into a reused
// buffer, as the NOT_OWNER walk does.
func BenchmarkPreference(b *testing.B) {
	for _, n := range benchSizes {
		tb := mustTable(b, UniformMembers(memberNames(n)...))
		keys := sessionKeys(4096, 19)
		dst := make([]int, 0, n)
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dst = tb.Preference(keys[i&4095], dst)
				i++
			}
		})
	}
}

// BenchmarkBoundedOwner places keys with the load bound, ε = 0.25.
func BenchmarkBoundedOwner(b *testing.B) {
	for _, n := range benchSizes {
		tb := mustTable(b, UniformMembers(memberNames(n)...))
		keys := sessionKeys(4096, 20)
		loads := make([]int64, n)
		b.Run("members="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m, _ := tb.BoundedOwner(keys[i&4095], loads, 0.25, nil)
				loads[m]++
				i++
			}
		})
	}
}

// BenchmarkExtract extracts and hashes a pass-through key from a parsed
// upgrade request.
func BenchmarkExtract(b *testing.B) {
	var req fasthttp.Request
	req.SetRequestURI("/ws?client=web&session=0123456789abcdef")
	req.Header.Set("X-Session", "0123456789abcdef")
	req.Header.SetCookie("sid", "0123456789abcdef")
	uri := req.URI()
	remote := &net.TCPAddr{IP: net.ParseIP("2001:db8::42"), Port: 5000}
	for _, src := range []string{"query:session", "header:X-Session", "cookie:sid", "addr"} {
		ks, err := ParseKeySource(src)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 64)
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = ks.Extract(buf[:0], &req.Header, uri, remote)
				_ = HashKey(buf)
			}
		})
	}
}
