package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/transport"
)

// TestNATSCommandLine: the command-line contract of issue 15. `graftlb
// proxy --nats embedded` names its NATS server in its listening line;
// gateways started with `--nats URL` (and no pool of the proxy's) serve
// the modules routed over it, queue calls spread over them; a fan-out
// route reaches each; `graftlb nats` is a server of its own.
func TestNATSCommandLine(t *testing.T) {
	// A long fan-out window: on a loaded machine a gateway may answer late.
	px := startProxyProc(t, "--nats", "embedded", "--fanout-window", "5s",
		"--route", "orders@1=nats:queue", "--route", "chaos@1.Chaos.Sleep=nats:fanout")
	url := px.Addr.NATS
	if url == "" {
		t.Fatalf("listening line has no nats: %+v", px.Addr)
	}
	for _, name := range []string{"gw1", "gw2"} {
		startGW(t, name, "--modules", "orders,chaos", "--nats", url)
	}
	c := dialT(t, "tcp://"+px.Addr.TCP)
	ctx := ctxT(t)
	seen := map[string]bool{}
	proctest.Eventually(t, 20*time.Second, "queue calls reach both gateways", func() bool {
		res, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
		if err != nil {
			return false // a gateway still subscribing
		}
		var o orders.Order
		if res.Decode(&o) != nil || o != orders.Make("o-1", o.Gateway) {
			t.Fatalf("bad order %+v", o)
		}
		seen[o.Gateway] = true
		return len(seen) == 2
	})
	res, err := c.Session().CallStateless(ctx, "chaos@1.Chaos.Sleep", 1)
	if err != nil {
		t.Fatal(err)
	}
	var list []transport.FanoutAnswer
	if err := res.Decode(&list); err != nil || len(list) != 2 || list[0].Gateway != "gw1" || list[1].Gateway != "gw2" {
		t.Fatalf("fan-out answers %+v (%v), want gw1 and gw2", list, err)
	}

	resp, err := http.Get("http://" + px.Addr.Admin + "/transport")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct {
		NATS     string                  `json:"nats"`
		Routes   []string                `json:"routes"`
		Counters transport.CounterValues `json:"counters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || len(view.Routes) != 2 || view.NATS == "" {
		t.Fatalf("GET /transport: %+v (%v)", view, err)
	}

	srv := proctest.Start(t, "nats", "--log-level", "warn")
	if srv.Addr.NATS == "" {
		t.Fatalf("graftlb nats listening line has no nats: %+v", srv.Addr)
	}
}

// TestRouteNeedsNATS: a NATS route without --nats is refused at start.
func TestRouteNeedsNATS(t *testing.T) {
	var out, errb strings.Builder
	code := run([]string{"proxy", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "", "--backend", "tcp://127.0.0.1:1#name=gw1",
		"--route", "orders@1=nats:queue"}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "--nats") {
		t.Fatalf("stderr %q does not say --nats is needed", errb.String())
	}
}

// A pass-through proxy relays connections and never reads a CALL: --nats
// and --route there are refused, not silently ignored.
func TestNATSRefusedInPassthrough(t *testing.T) {
	for _, extra := range [][]string{{"--nats", "embedded"}, {"--route", "orders@1=nats:queue"}} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"proxy", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "",
			"--passthrough", "tcp://127.0.0.1:1"}, extra...)
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Fatalf("%v: exit %d, want 2; stderr:\n%s", extra, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "--passthrough relays connections") {
			t.Fatalf("%v: stderr %q does not say why", extra, stderr.String())
		}
	}
}
