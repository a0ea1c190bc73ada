package balancer

import (
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/rs/zerolog"
)

// echoProxyWith is echoProxy with a configuration of the caller's.
func echoProxyWith(tb testing.TB, gateways int, cfg Config) *Proxy {
	tb.Helper()
	ms := make([]discovery.Member, gateways)
	for i := range ms {
		e := startEcho(tb)
		ms[i] = discovery.Member{Name: gwName(i), Role: discovery.RoleGateway, Addrs: discovery.Addrs{TCP: e.ln.Addr().String()}}
	}
	log := zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel)
	cfg.TCP, cfg.Logger = "127.0.0.1:0", &log
	p, err := New(cfg, discovery.NewStatic(ms))
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchmarkForwardCPU is benchmarkForward that also reports the CPU time
// per call of the whole process (proxy, echo gateways and raw client), the
// figure the metrics' cost is judged by.
func benchmarkForwardCPU(b *testing.B, cfg Config, stateless bool) {
	p := echoProxyWith(b, 3, cfg)
	start := cpuTime()
	benchmarkForward(b, p.Addrs().TCP, stateless, 64)
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkForwardMetrics compares forwarding with the metrics on (the
// default) and off:
//
//	go test -run '^$' -bench 'BenchmarkForwardMetrics' -benchtime 2s -count 5 ./balancer/
func BenchmarkForwardMetrics(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"stateless/on", Config{}}, {"stateless/off", Config{DisableMetrics: true}}} {
		b.Run(c.name, func(b *testing.B) { benchmarkForwardCPU(b, c.cfg, true) })
	}
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"stateful/on", Config{}}, {"stateful/off", Config{DisableMetrics: true}}} {
		b.Run(c.name, func(b *testing.B) { benchmarkForwardCPU(b, c.cfg, false) })
	}
}
