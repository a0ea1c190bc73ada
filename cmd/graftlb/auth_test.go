package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/credtest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// TestProxyCredentialsProcess: proxy processes started with --auth-tokens
// and --auth-jwt-ed25519-key serve `graftlb call` with --credential (a
// static token) and --credential-file (an EdDSA JWT), and refuse it with
// UNAUTHENTICATED (exit 1) without one or with a wrong one. Carts alice
// builds through one proxy process she reads through another, started
// with the same flags and sharing nothing else; bob gets SESSION_LOST.
func TestProxyCredentialsProcess(t *testing.T) {
	keys := credtest.NewKeys(t)
	tokens := credtest.TokensFile(t, "alice", "alice-token-123", "bob", "bob-token-456")
	jwtFile := credtest.WriteFile(t, t.TempDir(), "alice.jwt",
		keys.EdJWT(t, credtest.Claims("alice", time.Now(), time.Hour))+"\n")
	_, flags := staticPool(t)
	authArgs := append([]string{"--auth-tokens", tokens, "--auth-jwt-ed25519-key", keys.EdFile}, flags...)
	pa := startProxyProc(t, authArgs...)
	target := "tcp://" + pa.Addr.TCP

	run := func(extra ...string) ([]byte, error) {
		args := append([]string{"call", "--target", target}, extra...)
		args = append(args, "orders@1.Orders.GetOrder", `["o-1"]`)
		var out bytes.Buffer
		cmd := exec.Command(proctest.Binary(t), args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.Bytes(), err
	}
	for _, cred := range [][]string{{"--credential", "alice-token-123"}, {"--credential-file", jwtFile}} {
		out, err := run(cred...)
		if err != nil {
			t.Fatalf("graftlb call %v: %v: %s", cred[0], err, out)
		}
		var o orders.Order
		if err := json.Unmarshal(out, &o); err != nil || o.ID != "o-1" {
			t.Fatalf("graftlb call %v printed %q (%v)", cred[0], out, err)
		}
	}
	for _, cred := range [][]string{nil, {"--credential", "alice-token-12"}} {
		out, err := run(cred...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "UNAUTHENTICATED") {
			t.Fatalf("graftlb call %v: %v, output %q; want exit 1 and UNAUTHENTICATED", cred, err, out)
		}
	}

	dial := func(target, cred string) *client.Conn {
		t.Helper()
		c, err := client.Dial(ctxT(t), target, client.Options{Credential: []byte(cred)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	carts := testgw.BuildCarts(t, dial(target, "alice-token-123"), 20)
	pb := startProxyProc(t, authArgs...)
	alice := dial("ws://"+pb.Addr.WS+"/ws", "alice-token-123")
	bob := dial("tcp://"+pb.Addr.TCP, "bob-token-456")
	// A proxy that just started answers a session it cannot find
	// UNAVAILABLE for its pool settle time (5 s): wait it out.
	proctest.Eventually(t, 20*time.Second, "the second proxy's pool settled", func() bool {
		_, err := testgw.VerifyCart(ctxT(t), bob, carts[0])
		return !errors.Is(err, protocol.ErrUnavailable)
	})
	for i, cs := range carts {
		if _, err := testgw.VerifyCart(ctxT(t), alice, cs); err != nil {
			t.Fatalf("alice's cart %d through the second proxy process: %v", i, err)
		}
		if _, err := testgw.VerifyCart(ctxT(t), bob, cs); !errors.Is(err, protocol.ErrSessionLost) {
			t.Fatalf("bob reading alice's cart %d: %v, want SESSION_LOST", i, err)
		}
	}
}

// TestProxyAuthFlagErrors: credentials need the Hypertube proxy, and bad
// credential files stop the proxy at start with exit 2.
func TestProxyAuthFlagErrors(t *testing.T) {
	tokens := credtest.TokensFile(t, "alice", "tok")
	short := credtest.WriteFile(t, t.TempDir(), "short.key", "short")
	for _, args := range [][]string{
		{"--passthrough", "ws://127.0.0.1:1/ws", "--auth-tokens", tokens},
		{"--passthrough", "ws://127.0.0.1:1/ws", "--max-module-calls", "10"},
		{"--backend", "tcp://127.0.0.1:1", "--auth-jwt-hs256-key", short},
		{"--backend", "tcp://127.0.0.1:1", "--auth-tokens", tokens + ".missing"},
		{"--backend", "tcp://127.0.0.1:1", "--auth-jwt-issuer", "x"},
		{"--backend", "tcp://127.0.0.1:1", "--max-module-calls", "-1"},
	} {
		var out bytes.Buffer
		if code := runProxy(append([]string{"--tcp", "127.0.0.1:0", "--ws", ""}, args...), &out, &out); code != 2 {
			t.Errorf("graftlb proxy %v exited %d, want 2; output %q", args, code, out.String())
		}
	}
	var out bytes.Buffer
	if code := runCall([]string{"--credential", "a", "--credential-file", tokens, "orders@1.Orders.GetOrder"}, &out, &out); code != 2 {
		t.Errorf("graftlb call with both credential flags exited %d, want 2", code)
	}
}
