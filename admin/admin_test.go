package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestServer(t *testing.T) {
	s := New(nil, Limits{})
	s.HandleJSON("/pool", func() any { return []map[string]any{{"name": "gw1", "state": "ready"}} })
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/healthz"); code != 200 || string(body) != "OK" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := get(t, base+"/pool")
	var pool []map[string]any
	if code != 200 || json.Unmarshal(body, &pool) != nil || pool[0]["name"] != "gw1" {
		t.Fatalf("/pool = %d %s", code, body)
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Fatalf("/nope = %d", code)
	}
	resp, err := http.Post(base+"/pool", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST /pool = %d", resp.StatusCode)
	}
}
