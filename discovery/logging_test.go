package discovery

import (
	"testing"

	"github.com/rs/zerolog"
)

func TestMemberlistLogger(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{
			"[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:4000",
			map[string]string{"level": "warn", "reason": "wrong gossip key", "peer": "10.0.0.9:4000",
				"message": "discovery: refused a gossip peer", "detail": "failed to receive: no installed keys could decrypt the message"},
		},
		{
			`[ERR] memberlist: discarding packet with unacceptable label "x": from=10.0.0.9:4000`,
			map[string]string{"level": "warn", "reason": "wrong cluster label", "peer": "10.0.0.9:4000",
				"detail": `discarding packet with unacceptable label "x"`},
		},
		{
			"[ERR] memberlist: Decrypt packet failed: cannot decrypt empty payload from=10.0.0.9:4000",
			map[string]string{"level": "warn", "reason": "wrong gossip key"},
		},
		{
			"[ERR] memberlist: Failed push/pull merge: boom from=10.0.0.9:4000",
			map[string]string{"level": "error", "message": "Failed push/pull merge: boom", "peer": "10.0.0.9:4000", "component": "memberlist"},
		},
		{"[WARN] memberlist: Refuting a suspect message (from: gw2)", map[string]string{"level": "warn", "message": "Refuting a suspect message (from: gw2)"}},
		{"[INFO] memberlist: Marking gw2 as failed", map[string]string{"level": "info"}},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1", map[string]string{"level": "debug", "message": "Stream connection"}},
		{"Err: Could not set the deadline: x", map[string]string{"level": "info", "message": "Err: Could not set the deadline: x"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			buf := &logBuffer{}
			newMemberlistLogger(zerolog.New(buf).Level(zerolog.DebugLevel)).Print(tt.line)
			if e, ok := buf.find(tt.want); !ok {
				t.Fatalf("logged %v, want fields %v", buf.entries(), tt.want)
			} else if _, has := e["reason"]; has != (tt.want["reason"] != "") {
				t.Fatalf("reason field on a non-refusal or missing: %v", e)
			}
		})
	}
	t.Run("disabled level costs no event", func(t *testing.T) {
		buf := &logBuffer{}
		newMemberlistLogger(zerolog.New(buf).Level(zerolog.InfoLevel)).Print("[DEBUG] memberlist: noise")
		if len(buf.entries()) != 0 {
			t.Fatalf("debug line logged at info level: %v", buf.entries())
		}
	})
}
