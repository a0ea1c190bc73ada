package discovery

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestNewSnapshotSortsAndNormalizes(t *testing.T) {
	in := []Member{
		{Name: "gw2", Role: RoleGateway, Modules: []string{"b@1", "a@1"}},
		{Name: "px1", Role: RoleProxy},
		{Name: "gw1", Role: RoleGateway, Weight: 5},
		{Name: "gw2", Role: RoleGateway, Weight: 2}, // later duplicate wins
	}
	s := NewSnapshot(7, in)
	if s.Version() != 7 || s.Len() != 3 {
		t.Fatalf("version %d len %d", s.Version(), s.Len())
	}
	var names []string
	for _, m := range s.Members() {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "gw1,gw2,px1" {
		t.Fatalf("order %s", got)
	}
	if gw := s.Gateways(); len(gw) != 2 || gw[0].Name != "gw1" || gw[1].Name != "gw2" {
		t.Fatalf("gateways %+v", gw)
	}
	gw2, ok := s.Lookup("gw2")
	if !ok || gw2.Weight != 2 || gw2.Modules != nil {
		t.Fatalf("gw2 = %+v, %v", gw2, ok)
	}
	px, _ := s.Lookup("px1")
	if px.Weight != DefaultWeight {
		t.Fatalf("zero weight not normalized: %d", px.Weight)
	}
	if _, ok := s.Lookup("nope"); ok {
		t.Fatal("Lookup found a missing member")
	}
	in[2].Name = "changed"
	if _, ok := s.Lookup("gw1"); !ok {
		t.Fatal("snapshot shares the caller's slice")
	}
}

func TestSnapshotJSON(t *testing.T) {
	s := NewSnapshot(3, []Member{{Name: "gw1", Role: RoleGateway, State: StateDraining, Instance: 0xab,
		Addrs: Addrs{TCP: "127.0.0.1:1"}, Modules: []string{"orders@1"}}})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":3,"members":[{"name":"gw1","role":"gateway","addrs":{"tcp":"127.0.0.1:1"},"modules":["orders@1"],"weight":1,"state":"draining","instance":"00000000000000ab"}]}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
	var back struct{ Members []Member }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Members[0].Equal(s.Members()[0]) {
		t.Fatalf("JSON round trip: %+v", back.Members[0])
	}
	if b, _ := json.Marshal(Snapshot{}); string(b) != `{"version":0,"members":[]}` {
		t.Fatalf("zero snapshot JSON %s", b)
	}
}

func TestMemberServes(t *testing.T) {
	all := Member{}
	some := Member{Modules: []string{"cart@1", "orders@1"}}
	for _, tt := range []struct {
		m      Member
		module string
		want   bool
	}{
		{all, "anything@9", true},
		{some, "orders@1", true},
		{some, "orders@2", false},
	} {
		if got := tt.m.Serves(tt.module); got != tt.want {
			t.Errorf("%v.Serves(%q) = %v", tt.m.Modules, tt.module, got)
		}
	}
}

func TestFeedLatestWinsAndNeverBlocks(t *testing.T) {
	f := newFeed()
	for i := range 100 { // nobody reads: publish must not block
		f.publish([]Member{{Name: "gw", Role: RoleGateway, Weight: i + 1}})
	}
	s := <-f.ch
	if s.Version() != 100 || s.Members()[0].Weight != 100 {
		t.Fatalf("got version %d weight %d, want the latest (100)", s.Version(), s.Members()[0].Weight)
	}
	select {
	case s := <-f.ch:
		t.Fatalf("a second snapshot (version %d) was queued", s.Version())
	default:
	}
	if f.publish([]Member{{Name: "gw", Role: RoleGateway, Weight: 100}}) {
		t.Fatal("an unchanged pool was published")
	}
	if !f.publish(nil) || f.snapshot().Version() != 101 {
		t.Fatal("an emptied pool was not published")
	}
	f.close()
	f.close()
	if f.publish([]Member{{Name: "x", Role: RoleGateway}}) {
		t.Fatal("published after close")
	}
	if s, ok := <-f.ch; !ok || s.Version() != 101 {
		t.Fatalf("the unread snapshot was lost at close: %v %v", s.Version(), ok)
	}
	if _, ok := <-f.ch; ok {
		t.Fatal("Updates not closed")
	}
}

func TestFeedOrderUnderConcurrentConsumer(t *testing.T) {
	f := newFeed()
	done := make(chan uint64)
	go func() {
		var last uint64
		for s := range f.ch {
			if s.Version() <= last {
				t.Errorf("version %d after %d", s.Version(), last)
			}
			last = s.Version()
		}
		done <- last
	}()
	for i := range 1000 {
		f.publish([]Member{{Name: "gw", Role: RoleGateway, Weight: i + 1}})
	}
	f.close()
	if last := <-done; last != 1000 {
		t.Fatalf("consumer ended at version %d, want 1000", last)
	}
}
