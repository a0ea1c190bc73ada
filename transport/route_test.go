package transport_test

import (
	"testing"

	"github.com/graftlb/graftlb/transport"
)

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name    string
		specs   []string
		lookups map[[3]string]transport.Mode
		wantErr bool
	}{
		{name: "none", lookups: map[[3]string]transport.Mode{{"orders@1", "Orders", "GetOrder"}: transport.Direct}},
		{
			name:  "module and method",
			specs: []string{"reports@1=nats:queue", "audit@1.Audit.Record=nats:fanout", "billing@1=nats:durable", "reports@1.Reports.Now=direct"},
			lookups: map[[3]string]transport.Mode{
				{"reports@1", "Reports", "Build"}: transport.Queue,
				{"reports@1", "Reports", "Now"}:   transport.Direct,
				{"audit@1", "Audit", "Record"}:    transport.Fanout,
				{"audit@1", "Audit", "Other"}:     transport.Direct,
				{"billing@1", "Any", "Thing"}:     transport.Durable,
				{"orders@1", "Orders", "Get"}:     transport.Direct,
			},
		},
		{name: "no mode", specs: []string{"reports@1"}, wantErr: true},
		{name: "unknown mode", specs: []string{"reports@1=nats:topic"}, wantErr: true},
		{name: "no version", specs: []string{"reports=nats:queue"}, wantErr: true},
		{name: "half a method", specs: []string{"reports@1.Reports=nats:queue"}, wantErr: true},
		{name: "twice", specs: []string{"reports@1=nats:queue", "reports@1=nats:fanout"}, wantErr: true},
		{name: "protocol module", specs: []string{"$topic@1=nats:queue"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := transport.ParseRoutes(tt.specs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			for k, want := range tt.lookups {
				if got := r.Lookup([]byte(k[0]), []byte(k[1]), []byte(k[2])); got != want {
					t.Errorf("Lookup(%v) = %s, want %s", k, got, want)
				}
			}
		})
	}
}

func TestRoutesLookupAllocs(t *testing.T) {
	r, err := transport.ParseRoutes([]string{"reports@1=nats:queue", "audit@1.Audit.Record=nats:fanout"})
	if err != nil {
		t.Fatal(err)
	}
	m, ty, me := []byte("audit@1"), []byte("Audit"), []byte("Record")
	if n := testing.AllocsPerRun(100, func() { r.Lookup(m, ty, me) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

func TestToken(t *testing.T) {
	tests := map[string]string{
		"orders@1":   "orders@1",
		"a.b@1.2":    "a%2Eb@1%2E2",
		"x y*>@1":    "x%20y%2A%3E@1",
		"per%cent@1": "per%25cent@1",
	}
	for in, want := range tests {
		if got := transport.Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	s := transport.Subjects{}
	if got := s.Queue("orders@1"); got != "graftlb.q.orders@1" {
		t.Errorf("Queue = %q", got)
	}
	if got := s.Schedule("a.b@1", "ff"); got != "graftlb.s.a%2Eb@1.ff" {
		t.Errorf("Schedule = %q", got)
	}
}
