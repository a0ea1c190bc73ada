package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/clock"
)

// fakeResolver answers LookupHost from fields a test changes.
type fakeResolver struct {
	mu    sync.Mutex
	addrs []string
	err   error
	hosts []string // every host asked, in order
}

func (r *fakeResolver) set(addrs []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs, r.err = addrs, err
}

func (r *fakeResolver) resolve(ctx context.Context, host string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = append(r.hosts, host)
	return slices.Clone(r.addrs), r.err
}

func names(s Snapshot) []string { return memberNames(s) }

func TestDNSRefresh(t *testing.T) {
	res := &fakeResolver{addrs: []string{"10.0.0.1"}}
	logs := &logBuffer{}
	d, err := NewDNS(DNSConfig{
		Target:  "tcp://gg.pool:8990#weight=2",
		Resolve: res.resolve,
		Clock:   clock.NewFake(), // never advanced: only Refresh resolves
		Logger:  ptr(zerolog.New(logs)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first := <-d.Updates()
	if first.Version() != 1 || !slices.Equal(names(first), []string{"10.0.0.1:8990"}) || first.Members()[0].Weight != 2 {
		t.Fatalf("first snapshot %+v", first.Members())
	}

	steps := []struct {
		name        string
		addrs       []string
		err         error
		wantChanged bool
		wantErr     bool
		wantNames   []string
	}{
		{"added", []string{"10.0.0.2", "10.0.0.1"}, nil, true, false, []string{"10.0.0.1:8990", "10.0.0.2:8990"}},
		{"same set, other order, a duplicate", []string{"10.0.0.1", "10.0.0.2", "10.0.0.1"}, nil, false, false, []string{"10.0.0.1:8990", "10.0.0.2:8990"}},
		{"error keeps the pool", nil, errors.New("server misbehaving"), false, true, []string{"10.0.0.1:8990", "10.0.0.2:8990"}},
		{"empty answer keeps the pool", []string{}, nil, false, true, []string{"10.0.0.1:8990", "10.0.0.2:8990"}},
		{"replaced", []string{"10.0.0.3", "10.0.0.1"}, nil, true, false, []string{"10.0.0.1:8990", "10.0.0.3:8990"}},
	}
	version := first.Version()
	for _, st := range steps {
		res.set(st.addrs, st.err)
		changed, err := d.Refresh(context.Background())
		if changed != st.wantChanged || (err != nil) != st.wantErr {
			t.Fatalf("%s: Refresh = %v, %v", st.name, changed, err)
		}
		if changed {
			version++
			select {
			case s := <-d.Updates():
				if s.Version() != version {
					t.Fatalf("%s: version %d, want %d", st.name, s.Version(), version)
				}
			default:
				t.Fatalf("%s: changed but nothing on Updates", st.name)
			}
		} else {
			select {
			case s := <-d.Updates():
				t.Fatalf("%s: unchanged pool published version %d", st.name, s.Version())
			default:
			}
		}
		if s := d.Snapshot(); s.Version() != version || !slices.Equal(names(s), st.wantNames) {
			t.Fatalf("%s: snapshot v%d %v, want v%d %v", st.name, s.Version(), names(s), version, st.wantNames)
		}
	}
	if _, ok := logs.find(map[string]string{"level": "warn", "message": "discovery: DNS resolution failed; keeping the previous pool"}); !ok {
		t.Fatalf("resolver error not logged at warn; logs: %v", logs.entries())
	}
	if slices.ContainsFunc(res.hosts, func(h string) bool { return h != "gg.pool" }) {
		t.Fatalf("resolved %v, want only gg.pool", res.hosts)
	}
}

func TestDNSTickerRunsOnTheClock(t *testing.T) {
	clk := clock.NewFake()
	res := &fakeResolver{addrs: []string{"10.0.0.1"}}
	d, err := NewDNS(DNSConfig{Target: "ws://gg.pool:80/ws#http=:81", Resolve: res.resolve, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first := <-d.Updates()
	want := Member{Name: "10.0.0.1:80", Role: RoleGateway, Weight: 1, Addrs: Addrs{WS: "10.0.0.1:80", HTTP: "10.0.0.1:81"}}
	if first.Len() != 1 || !first.Members()[0].Equal(want) {
		t.Fatalf("first snapshot %+v", first.Members())
	}
	if clk.Waiters() != 1 {
		t.Fatalf("%d tickers armed, want 1", clk.Waiters())
	}
	res.set([]string{"10.0.0.1", "10.0.0.2"}, nil)
	clk.Advance(DefaultDNSInterval)
	select {
	case s := <-d.Updates():
		if !slices.Equal(names(s), []string{"10.0.0.1:80", "10.0.0.2:80"}) {
			t.Fatalf("after a tick: %v", names(s))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot after the ticker fired")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if clk.Waiters() != 0 {
		t.Fatal("ticker still armed after Close")
	}
	if _, ok := <-d.Updates(); ok {
		t.Fatal("Updates open after Close")
	}
}

func TestDNSFirstResolutionFails(t *testing.T) {
	res := &fakeResolver{err: errors.New("no such host")}
	d, err := NewDNS(DNSConfig{Target: "gg.pool:8990", Resolve: res.resolve, Clock: clock.NewFake()})
	if err != nil {
		t.Fatalf("NewDNS must not fail on a resolver error: %v", err)
	}
	defer d.Close()
	if s := d.Snapshot(); s.Version() != 0 || s.Len() != 0 {
		t.Fatalf("snapshot v%d with %d members before any answer", s.Version(), s.Len())
	}
	res.set([]string{"10.0.0.9"}, nil)
	if changed, err := d.Refresh(context.Background()); !changed || err != nil {
		t.Fatalf("Refresh = %v, %v", changed, err)
	}
	if s := <-d.Updates(); s.Version() != 1 {
		t.Fatalf("first published version %d", s.Version())
	}
}

func TestDNSConfigErrors(t *testing.T) {
	for _, target := range []string{"", "gg.pool", "tcp://gg:1#name=x", "ws://gg:1/ws#http=other:2", "udp://gg:1"} {
		if _, err := NewDNS(DNSConfig{Target: target}); err == nil {
			t.Errorf("NewDNS(%q) succeeded", target)
		}
	}
	if _, err := NewDNS(DNSConfig{Target: "gg:1", Interval: -time.Second}); err == nil {
		t.Error("negative interval accepted")
	}
	if c := DefaultDNSConfig("gg:1"); c.Interval != 5*time.Second || c.Resolve == nil || c.Clock == nil {
		t.Errorf("DefaultDNSConfig = %+v", c)
	}
}

// TestSamePoolThreeWays describes each pool as a static list, as a static
// list with every default spelled out in another order, and as DNS; all
// three must publish the same members.
func TestSamePoolThreeWays(t *testing.T) {
	pools := []struct {
		name      string
		static    []string
		explicit  []string
		dnsTarget string
		dnsAnswer []string
	}{
		{
			name:      "tcp",
			static:    []string{"tcp://10.0.0.1:8990", "tcp://10.0.0.2:8990", "tcp://10.0.0.3:8990"},
			explicit:  []string{"10.0.0.3:8990#weight=1", "tcp://10.0.0.1:8990#name=10.0.0.1:8990", "tcp://10.0.0.2:8990"},
			dnsTarget: "tcp://gateways.internal:8990",
			dnsAnswer: []string{"10.0.0.2", "10.0.0.3", "10.0.0.1"},
		},
		{
			name:      "websocket, weighted, with /status",
			static:    []string{"ws://10.1.0.1:80/ws#weight=3,http=:81", "ws://10.1.0.2:80/ws#weight=3,http=:81"},
			explicit:  []string{"ws://10.1.0.2:80#http=10.1.0.2:81,weight=3", "ws://10.1.0.1:80/ws#http=10.1.0.1:81,weight=3,name=10.1.0.1:80"},
			dnsTarget: "ws://gg.internal:80/ws#weight=3,http=:81",
			dnsAnswer: []string{"10.1.0.1", "10.1.0.2"},
		},
		{
			name:      "ipv6",
			static:    []string{"tcp://[fd00::1]:8990", "tcp://[fd00::2]:8990"},
			explicit:  []string{"[fd00::2]:8990", "[fd00::1]:8990#name=[fd00::1]:8990"},
			dnsTarget: "gateways.internal:8990",
			dnsAnswer: []string{"fd00::1", "fd00::2"},
		},
	}
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			var snaps []Snapshot
			for _, entries := range [][]string{p.static, p.explicit} {
				ms, err := ParseBackends(entries)
				if err != nil {
					t.Fatal(err)
				}
				s := NewStatic(ms)
				snaps = append(snaps, <-s.Updates())
				s.Close()
			}
			res := &fakeResolver{addrs: p.dnsAnswer}
			d, err := NewDNS(DNSConfig{Target: p.dnsTarget, Resolve: res.resolve, Clock: clock.NewFake()})
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, <-d.Updates())
			d.Close()
			for i, s := range snaps[1:] {
				if !slices.EqualFunc(s.Gateways(), snaps[0].Gateways(), Member.Equal) || !s.SameMembers(snaps[0]) {
					t.Errorf("description %d differs:\n got %+v\nwant %+v", i+2, s.Gateways(), snaps[0].Gateways())
				}
			}
			if len(snaps[0].Gateways()) != len(p.static) {
				t.Fatalf("%d gateways, want %d", len(snaps[0].Gateways()), len(p.static))
			}
		})
	}
}

// TestGossipAndStaticSamePool: a pool that gossips and the same pool
// written as a static list (with the modules and listeners the gateways
// announce) give the balancer the same routing view: names, listeners,
// modules, weights and states. Only what gossip alone knows (instance ids,
// gossip addresses) differs.
func TestGossipAndStaticSamePool(t *testing.T) {
	seed := startNode(t, "proxy", RoleProxy, nil, nil)
	var gws []*testNode
	for _, name := range []string{"gw-a", "gw-b"} {
		gws = append(gws, startNode(t, name, RoleGateway, []string{seed.LocalAddr()}, nil))
	}
	waitFor(t, converge, "gossip to converge", func() bool { return len(seed.Snapshot().Gateways()) == 2 })
	var entries []string
	for _, g := range gws {
		m := g.Local()
		entries = append(entries,
			fmt.Sprintf("tcp://%s#name=%s,modules=%s,zone=%s", m.Addrs.TCP, m.Name, strings.Join(m.Modules, "+"), m.Zone),
			fmt.Sprintf("ws://%s/ws#name=%s,modules=%s,zone=%s", m.Addrs.WS, m.Name, strings.Join(m.Modules, "+"), m.Zone))
	}
	ms, err := ParseBackends(entries)
	if err != nil {
		t.Fatal(err)
	}
	st := NewStatic(ms)
	defer st.Close()
	static := (<-st.Updates()).Gateways()
	gossip := seed.Snapshot().Gateways()
	routing := func(m Member) Member {
		m.Instance, m.Addrs.Gossip = 0, ""
		return m
	}
	if len(static) != len(gossip) {
		t.Fatalf("static %d gateways, gossip %d", len(static), len(gossip))
	}
	for i := range static {
		if !routing(static[i]).Equal(routing(gossip[i])) {
			t.Errorf("gateway %d:\n static %+v\n gossip %+v", i, static[i], gossip[i])
		}
	}
}
