package discovery

import (
	"strings"
	"testing"
)

func TestParseBackends(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		want    []Member
		wantErr string
	}{
		{
			name:    "plain host:port is tcp",
			entries: []string{"127.0.0.1:8990"},
			want:    []Member{{Name: "127.0.0.1:8990", Role: RoleGateway, Addrs: Addrs{TCP: "127.0.0.1:8990"}, Weight: 1}},
		},
		{
			name:    "options",
			entries: []string{"tcp://127.0.0.1:8990#name=gw1,weight=2,zone=a,modules=orders@1+cart@1,http=:8889"},
			want: []Member{{Name: "gw1", Role: RoleGateway, Weight: 2, Zone: "a", Modules: []string{"cart@1", "orders@1"},
				Addrs: Addrs{TCP: "127.0.0.1:8990", HTTP: "127.0.0.1:8889"}}},
		},
		{
			name:    "websocket and ipv6",
			entries: []string{"ws://[::1]:8888/ws#http=[::1]:8889", "ws://gg.example:80"},
			want: []Member{
				{Name: "[::1]:8888", Role: RoleGateway, Weight: 1, Addrs: Addrs{WS: "[::1]:8888", HTTP: "[::1]:8889"}},
				{Name: "gg.example:80", Role: RoleGateway, Weight: 1, Addrs: Addrs{WS: "gg.example:80"}},
			},
		},
		{
			name:    "same name merges",
			entries: []string{"tcp://10.0.0.5:8990#name=gw1,weight=3", "ws://10.0.0.5:8888/ws#name=gw1,http=:8889"},
			want: []Member{{Name: "gw1", Role: RoleGateway, Weight: 3,
				Addrs: Addrs{TCP: "10.0.0.5:8990", WS: "10.0.0.5:8888", HTTP: "10.0.0.5:8889"}}},
		},
		{
			name:    "tls and wss",
			entries: []string{"tls://127.0.0.1:8990", "wss://gw.example:443/ws#name=gw2"},
			want: []Member{
				{Name: "127.0.0.1:8990", Role: RoleGateway, Weight: 1, Addrs: Addrs{TCP: "127.0.0.1:8990", TLS: true}},
				{Name: "gw2", Role: RoleGateway, Weight: 1, Addrs: Addrs{WS: "gw.example:443", TLS: true}},
			},
		},
		{name: "tls and plain in one member", entries: []string{"tls://h:1#name=a", "ws://h:2#name=a"}, wantErr: "tls"},
		{name: "tls path", entries: []string{"tls://h:1/ws"}, wantErr: "no path"},
		{name: "duplicate", entries: []string{"tcp://h:1", "h:1"}, wantErr: "duplicate member name"},
		{name: "merge conflict", entries: []string{"tcp://h:1#name=a", "tcp://h:2#name=a"}, wantErr: "tcp address"},
		{name: "weight conflict", entries: []string{"tcp://h:1#name=a,weight=2", "ws://h:2#name=a,weight=3"}, wantErr: "weight"},
		{name: "bad scheme", entries: []string{"http://h:1"}, wantErr: "scheme"},
		{name: "bad ws path", entries: []string{"ws://h:1/socket"}, wantErr: "/ws"},
		{name: "tcp path", entries: []string{"tcp://h:1/x"}, wantErr: "no path"},
		{name: "no port", entries: []string{"tcp://h"}, wantErr: "port"},
		{name: "port 0", entries: []string{"h:0"}, wantErr: "port"},
		{name: "bad weight", entries: []string{"h:1#weight=0"}, wantErr: "weight"},
		{name: "unknown option", entries: []string{"h:1#colour=red"}, wantErr: "unknown option"},
		{name: "empty option", entries: []string{"h:1#name="}, wantErr: "key=value"},
		{name: "query", entries: []string{"ws://h:1/ws?x=1"}, wantErr: "only scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBackends(tt.entries)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "discovery: ") {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d members %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("member %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestStaticSource(t *testing.T) {
	ms, err := ParseBackends([]string{"tcp://127.0.0.1:2", "tcp://127.0.0.1:1#weight=2"})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStatic(ms)
	ms[0].Name = "mutated"
	got := <-s.Updates()
	if got.Version() != 1 || got.Len() != 2 || got.Members()[0].Name != "127.0.0.1:1" || got.Members()[0].Weight != 2 {
		t.Fatalf("snapshot %+v", got.Members())
	}
	if !s.Snapshot().SameMembers(got) {
		t.Fatal("Snapshot differs from the delivered one")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-s.Updates(); ok {
		t.Fatal("Updates still open after Close")
	}
}
