package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/internal/child"
	"github.com/graftlb/graftlb/internal/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(proctest.Cleanup)) }

// TestREADMEProgram runs README's "Host your own module" program as it
// is, three times, behind two graftlb proxies found by gossip: sessions
// on either proxy hear a room's broadcast, a stateless call needs no
// session, and when the gateway holding a room is SIGKILLed its session
// is told it is lost while the rest carry on. README shows this file's
// program and the client part of this test verbatim (TestREADMEShowsIt).
func TestREADMEProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "chat")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := append(os.Environ(), "GRAFTLB_GOSSIP_KEY="+base64.StdEncoding.EncodeToString(key))
	proxy := func(join ...string) *child.Proc {
		args := []string{"proxy", "--tcp", "127.0.0.1:0", "--ws", "", "--admin", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--drain-delay", "0"}
		if len(join) > 0 {
			args = append(args, "--join", join[0])
		}
		p, err := child.Start(context.Background(), "proxy", proctest.Binary(t), args, child.Options{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		return p
	}
	p1 := proxy()
	p2 := proxy(p1.Addr.Gossip)
	gws := map[string]*child.Proc{}
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		g, err := child.Run(name, bin, []string{"--name", name, "--join", p1.Addr.Gossip}, child.Options{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Kill)
		gws[name] = g
	}
	for _, p := range []*child.Proc{p1, p2} {
		proctest.Eventually(t, 20*time.Second, "both proxies route to the three gateways", func() bool {
			return len(ready(t, p.Addr.Admin)) == 3
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// README:begin
	ann, err := client.Dial(ctx, "tcp://"+p1.Addr.TCP, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	bob, err := client.Dial(ctx, "tcp://"+p2.Addr.TCP, client.Options{}) // through the other proxy
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	v, err := client.CallStateless[string](ctx, ann.Session(), "chat@1.Chat.Version")
	if err != nil || v != "chat/1" {
		t.Fatalf("version %q: %v", v, err)
	}
	heard := bob.Session().Events(16) // bob hears the room...
	if err := bob.Session().Subscribe(ctx, "room/lobby"); err != nil {
		t.Fatal(err)
	}
	s := ann.NewSession()
	lost := make(chan error, 1)
	s.OnLost(func(err error) { lost <- err }) // ...and ann learns if its room dies
	room, err := s.New(ctx, "chat@1", "Room", "lobby")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := room.Call(ctx, "Say", "ann", "hello"); err != nil {
		t.Fatal(err)
	}
	var line Line
	if err := (<-heard.C).Decode(&line); err != nil || line != (Line{Who: "ann", Text: "hello"}) {
		t.Fatalf("bob heard %+v (%v)", line, err)
	}
	// README:end

	// SIGKILL the gateway that holds ann's room: ann is told at once, the
	// room's calls fail with SESSION_LOST, and a new room elsewhere works.
	holder := holderOf(t, p1.Addr.Admin)
	gws[holder].Kill()
	select {
	case err := <-lost:
		if !errors.Is(err, client.ErrSessionLost) {
			t.Fatalf("OnLost got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ann was not told that %s died with her room", holder)
	}
	if _, err := room.Call(ctx, "Say", "ann", "anyone?"); !errors.Is(err, client.ErrSessionLost) {
		t.Fatalf("a call of the lost room: %v", err)
	}
	again, err := ann.NewSession().New(ctx, "chat@1", "Room", "lobby")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Call(ctx, "Say", "ann", "back"); err != nil {
		t.Fatal(err)
	}
	if err := (<-heard.C).Decode(&line); err != nil || line.Text != "back" {
		t.Fatalf("after the kill bob heard %+v (%v)", line, err)
	}

	// SIGTERM drains the two gateways left, one after the other: the first
	// hands its rooms to the other (they are movable), so the new room
	// still works wherever it was; the last one has nowhere to hand them
	// and exits once quiet. Each exits 0.
	left := 0
	for name, g := range gws {
		if name == holder {
			continue
		}
		if err := g.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, ok := g.Wait(20 * time.Second); !ok || code != 0 {
			t.Fatalf("%s after SIGTERM: exit %d (exited %v)\n%s", name, code, ok, g.Stderr())
		}
		if left++; left == 1 {
			if _, err := again.Call(ctx, "Say", "ann", "still here"); err != nil {
				t.Fatalf("the room after %s drained: %v", name, err)
			}
			if err := (<-heard.C).Decode(&line); err != nil || line.Text != "still here" {
				t.Fatalf("after the drain bob heard %+v (%v)", line, err)
			}
		}
	}
}

type poolMember struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Sessions int64  `json:"sessions"`
}

func pool(t *testing.T, admin string) []poolMember {
	t.Helper()
	r, err := http.Get("http://" + admin + "/pool")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var ms []poolMember
	if err := json.NewDecoder(r.Body).Decode(&ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

func ready(t *testing.T, admin string) []string {
	var names []string
	for _, m := range pool(t, admin) {
		if m.State == "ready" {
			names = append(names, m.Name)
		}
	}
	return names
}

// holderOf is the one gateway with a session bound at this proxy.
func holderOf(t *testing.T, admin string) string {
	t.Helper()
	var holders []string
	for _, m := range pool(t, admin) {
		if m.Sessions > 0 {
			holders = append(holders, m.Name)
		}
	}
	if len(holders) != 1 {
		t.Fatalf("gateways holding sessions: %v, want one", holders)
	}
	return holders[0]
}

// TestREADMEShowsIt checks that README shows this program and the client
// part of TestREADMEProgram as they are.
func TestREADMEShowsIt(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	prog, _ := os.ReadFile("main.go")
	test, _ := os.ReadFile("chat_test.go")
	part := string(test)
	part = part[strings.Index(part, "// README:begin\n")+len("// README:begin\n") : strings.Index(part, "\t// README:end")]
	for what, want := range map[string]string{"main.go": string(prog), "the client": dedent(part)} {
		if !strings.Contains(string(readme), "```go\n"+want+"```\n") {
			t.Errorf("README does not show %s as it is", what)
		}
	}
}

func dedent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}
