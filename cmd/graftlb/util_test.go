package main

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// waitHTTP polls url until ok accepts its body.
func waitHTTP(t *testing.T, url string, ok func([]byte) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if ok(body) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the expected state", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonInto(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }
