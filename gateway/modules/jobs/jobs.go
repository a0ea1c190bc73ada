// Package jobs is the example module jobs@1: work that takes a while and
// records every execution, so that a test or the durable-calls bench can
// count, by job id, how many times each call ran and where — also across
// gateways that were SIGKILLed, when the record goes to a file that all of
// them append to.
package jobs

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/protocol"
)

// Name and Version identify the module: jobs@1.
const (
	Name    = "jobs"
	Version = "1"
)

// MaxWork bounds Run's ms.
const MaxWork = 60_000

// Record is one line of the record: a job started or finished on a gateway.
type Record struct {
	Event   string `json:"ev"` // "start" or "done"
	ID      string `json:"id"`
	Gateway string `json:"gw"`
}

// Recorder records executions: it writes each Record as a JSON line to W
// (nil: nowhere; each line is one write, so that processes appending to
// one file with O_APPEND do not interleave) and counts them.
type Recorder struct {
	W io.Writer

	mu     sync.Mutex
	starts map[string]int
	dones  map[string]int
	first  map[string]time.Time // first start of each job
}

func (r *Recorder) record(ev, id, gw string) {
	if r == nil {
		return
	}
	line, _ := json.Marshal(Record{Event: ev, ID: id, Gateway: gw})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.starts == nil {
		r.starts, r.dones, r.first = map[string]int{}, map[string]int{}, map[string]time.Time{}
	}
	if ev == "start" {
		if r.starts[id] == 0 {
			r.first[id] = time.Now()
		}
		r.starts[id]++
	} else {
		r.dones[id]++
	}
	if r.W != nil {
		_, _ = r.W.Write(append(line, '\n'))
	}
}

// SetWriter sets W, safely while jobs run.
func (r *Recorder) SetWriter(w io.Writer) {
	r.mu.Lock()
	r.W = w
	r.mu.Unlock()
}

// Counts returns how many times each job started and finished.
func (r *Recorder) Counts() (starts, dones map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	starts, dones = map[string]int{}, map[string]int{}
	for k, v := range r.starts {
		starts[k] = v
	}
	for k, v := range r.dones {
		dones[k] = v
	}
	return starts, dones
}

// FirstStart returns when job id first started here (ok false: never).
func (r *Recorder) FirstStart(id string) (t time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok = r.first[id]
	return t, ok
}

// Done is Run's result.
type Done struct {
	ID      string `cbor:"id" json:"id"`
	Gateway string `cbor:"gateway" json:"gateway"`
}

// Module returns jobs@1 with the static type Jobs:
//
//	Jobs.Run(id string, ms int) Done   // works ms milliseconds (honours the deadline)
//
// recording each start and finish with r (nil: not recorded).
func Module(r *Recorder) *gateway.Module {
	return gateway.NewModule(Name, Version).
		Func("Jobs", "Run", func(ctx context.Context, id string, ms int) (Done, error) {
			if ms < 0 || ms > MaxWork {
				return Done{}, protocol.Errorf(protocol.CodeBadArgs, "ms must be between 0 and %d, got %d", MaxWork, ms)
			}
			info, _ := gateway.InfoFrom(ctx)
			r.record("start", id, info.Gateway)
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return Done{}, ctx.Err()
			}
			r.record("done", id, info.Gateway)
			return Done{ID: id, Gateway: info.Gateway}, nil
		})
}
