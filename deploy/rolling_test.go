package deploy

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/proctest"
)

// TestRollingRestartBehindHAProxy restarts both graftlb proxies behind
// Debian's HAProxy running deploy/haproxy/graftlb-l4.cfg, one after the
// other, under the mixed workload (stateless calls and carts read back):
// each proxy drains on SIGTERM (/readyz fails, listeners close, GOAWAY
// RECONNECT), its clients move through HAProxy to the other proxy and
// resume their sessions, and a new process takes its ports again. Not one
// call fails and not one session is lost or misrouted.
func TestRollingRestartBehindHAProxy(t *testing.T) {
	bin := sbin(t, "haproxy", "haproxy")
	gw1, gw2 := startGateway(t, "gw1"), startGateway(t, "gw2")
	ports := [2]struct{ tcp, admin string }{{freeAddr(t), freeAddr(t)}, {freeAddr(t), freeAddr(t)}}
	start := func(i int) *proctest.Proc {
		return proctest.Start(t, "proxy", "--name", fmt.Sprintf("proxy%d", i+1), "--tcp", ports[i].tcp, "--ws", "",
			"--admin", ports[i].admin, "--log-format", "json", "--drain-delay", "2s",
			"--backend", "tcp://"+gw1.Addr.TCP+"#name=gw1", "--backend", "tcp://"+gw2.Addr.TCP+"#name=gw2")
	}
	proxies := []*proctest.Proc{start(0), start(1)}
	listen := freeAddr(t)
	cfg := render(t, "haproxy/graftlb-l4.cfg", map[string]string{
		"10.0.0.10:9990":                 listen,
		"10.0.0.21:9990 check port 9889": ports[0].tcp + " check port " + port(ports[0].admin),
		"10.0.0.22:9990 check port 9889": ports[1].tcp + " check port " + port(ports[1].admin),
	})
	startServer(t, bin, "-db", "-f", cfg)
	target := "tcp://" + listen
	waitUntil(t, 15*time.Second, "a call through HAProxy", func() bool { _, err := callOnce(target); return err == nil })

	r := startLoad(t, target)
	var took [2]time.Duration
	for i := range proxies {
		waitUntil(t, 10*time.Second, "both proxies ready", func() bool {
			for j := range ports {
				if code, _, err := httpGet("http://" + ports[j].admin + "/readyz"); err != nil || code != 200 {
					return false
				}
			}
			return true
		})
		time.Sleep(time.Second) // load on both proxies before the restart, as in production
		began := time.Now()
		if err := proxies[i].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, ok := proxies[i].Wait(40 * time.Second); !ok || code != 0 {
			t.Fatalf("proxy%d after SIGTERM: exit %d (exited %v)", i+1, code, ok)
		}
		took[i] = time.Since(began)
		proxies[i] = start(i)
	}
	rep := finish(t, r, "rolling restart of the proxies")
	var lost, verified, misrouted int64
	if s := rep.Sessions; s != nil {
		lost, verified, misrouted = s.Lost, s.Verified, s.Misrouted
	}
	t.Logf("rolling restart of 2 proxies behind HAProxy (mixed, 4 conns, 16 users): calls ok %d, failed %d %v; "+
		"sessions verified %d, lost %d, misrouted %d; drains took %.1f s and %.1f s",
		rep.CallsOK, rep.CallsFailed, rep.Errors, verified, lost, misrouted, took[0].Seconds(), took[1].Seconds())
	if rep.CallsFailed != 0 || lost != 0 || misrouted != 0 {
		t.Fatalf("the rolling restart failed %d calls (%v) and lost %d sessions, misrouted %d", rep.CallsFailed, rep.Errors, lost, misrouted)
	}
}
