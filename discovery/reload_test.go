package discovery

import (
	"slices"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// TestStaticSet: Set publishes a new snapshot when the members change,
// and none when they do not.
func TestStaticSet(t *testing.T) {
	s := NewStatic([]Member{{Name: "gw1", Addrs: Addrs{TCP: "127.0.0.1:1"}}})
	defer s.Close()
	if first := <-s.Updates(); first.Version() != 1 {
		t.Fatalf("first version %d", first.Version())
	}
	if s.Set([]Member{{Name: "gw1", Addrs: Addrs{TCP: "127.0.0.1:1"}}}) {
		t.Fatal("the same members published again")
	}
	if !s.Set([]Member{{Name: "gw1", Addrs: Addrs{TCP: "127.0.0.1:1"}}, {Name: "gw2", Addrs: Addrs{TCP: "127.0.0.1:2"}, Weight: 3}}) {
		t.Fatal("new members not published")
	}
	next := <-s.Updates()
	if next.Version() != 2 || !slices.Equal(names(next), []string{"gw1", "gw2"}) || next.Members()[1].Role != RoleGateway {
		t.Fatalf("second snapshot v%d %+v", next.Version(), next.Members())
	}
}

// TestDNSReconfigure: a new target is resolved at once and its members
// replace the old; an invalid target changes nothing.
func TestDNSReconfigure(t *testing.T) {
	res := &fakeResolver{addrs: []string{"10.0.0.1"}}
	d, err := NewDNS(DNSConfig{Target: "tcp://a.pool:8990", Resolve: res.resolve, Clock: clock.NewFake()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-d.Updates()
	if err := d.Reconfigure("tcp://b.pool:8990#name=x", time.Second, 0); err == nil {
		t.Fatal("a target with name= was taken")
	}
	res.set([]string{"10.0.0.9"}, nil)
	if err := d.Reconfigure("tcp://b.pool:9000", 7*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	snap := <-d.Updates()
	if !slices.Equal(names(snap), []string{"10.0.0.9:9000"}) {
		t.Fatalf("after the reconfigure: %v", names(snap))
	}
	res.mu.Lock()
	last := res.hosts[len(res.hosts)-1]
	res.mu.Unlock()
	if c := d.Config(); last != "b.pool" || c.Interval != 7*time.Second || c.Timeout != DefaultDNSTimeout {
		t.Fatalf("resolved %q, config %+v", last, c)
	}
}
