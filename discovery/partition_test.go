package discovery

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cutTransport is memberlist's own UDP/TCP transport on loopback with a
// switch that cuts the node off: while cut, every packet in or out is
// dropped and every stream refused, as a network partition does.
type cutTransport struct {
	*memberlist.NetTransport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var errCut = errors.New("partitioned")

// withCutTransport is a Config.Tune that gives the node a cutTransport,
// returned through *out.
func withCutTransport(tb testing.TB, out **cutTransport) func(*memberlist.Config) {
	return func(mc *memberlist.Config) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort})
		if err != nil {
			tb.Fatal(err)
		}
		mc.BindPort = nt.GetAutoBindPort()
		mc.AdvertisePort = mc.BindPort
		ct := &cutTransport{NetTransport: nt, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), stop: make(chan struct{})}
		ct.wg.Add(2)
		go ct.relayPackets()
		go ct.relayStreams()
		mc.Transport = ct
		*out = ct
	}
}

func (c *cutTransport) relayPackets() {
	defer c.wg.Done()
	for {
		select {
		case p := <-c.NetTransport.PacketCh():
			if c.cut.Load() {
				continue
			}
			select {
			case c.packets <- p:
			case <-c.stop:
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (c *cutTransport) relayStreams() {
	defer c.wg.Done()
	for {
		select {
		case s := <-c.NetTransport.StreamCh():
			if c.cut.Load() {
				_ = s.Close()
				continue
			}
			select {
			case c.streams <- s:
			case <-c.stop:
				_ = s.Close()
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cutTransport) StreamCh() <-chan net.Conn           { return c.streams }

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.NetTransport.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.NetTransport.DialTimeout(addr, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, timeout)
}

func (c *cutTransport) Shutdown() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	return c.NetTransport.Shutdown()
}

// TestPartitionedMemberRejoins (issue 13): a gateway cut off from the
// cluster until both sides declare each other dead is, once the network
// heals, the same process and reachable; memberlist alone gossips to the
// dead only briefly and pushes/pulls only with live members, so it stayed
// out for about 30 s. The periodic re-join of the seeds brings it back, on
// every member, within a few seconds.
func TestPartitionedMemberRejoins(t *testing.T) {
	awaitMemberlistExit(t)
	seed := startNode(t, "px1", RoleProxy, nil, nil)
	join := []string{seed.LocalAddr()}
	gw1 := startNode(t, "gw1", RoleGateway, join, nil)
	var ct *cutTransport
	gw2 := startNode(t, "gw2", RoleGateway, join, func(c *Config) { c.Tune = withCutTransport(t, &ct) })
	for _, n := range []*testNode{seed, gw1} {
		waitForMember(t, n, "gw2")
	}
	waitForMember(t, gw2, "gw1")

	ct.cut.Store(true)
	waitFor(t, 40*time.Second, "both sides to declare the other dead", func() bool {
		_, a := memberNamed(seed, "gw2")
		_, b := memberNamed(gw1, "gw2")
		_, c := memberNamed(gw2, "gw1")
		_, d := memberNamed(gw2, "px1")
		return !a && !b && !c && !d
	})
	ct.cut.Store(false)
	took := waitFor(t, 45*time.Second, "every member to see gw2 again, and gw2 them", func() bool {
		_, a := memberNamed(seed, "gw2")
		_, b := memberNamed(gw1, "gw2")
		_, c := memberNamed(gw2, "gw1")
		_, d := memberNamed(gw2, "px1")
		return a && b && c && d
	})
	t.Logf("after the partition healed, every member saw gw2 again in %v", took.Round(time.Millisecond))
	if limit := 2*DefaultRejoinInterval + 2*time.Second; took > limit {
		t.Fatalf("the partitioned member took %v to be seen again, want under %v", took, limit)
	}
}
