package health

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Check.Interval != time.Second || c.Check.Timeout != time.Second || c.Check.Rise != 2 || c.Check.Fall != 3 || c.Check.InitialState != InitUp {
		t.Errorf("check defaults %+v", c.Check)
	}
	o := c.Outlier
	if o.Interval != 10*time.Second || o.ConsecutiveFailures != 5 || o.FailureRate != 0.85 || o.MinRequests != 50 ||
		o.BaseEjectionTime != 30*time.Second || o.MaxEjectionTime != 300*time.Second || o.MaxEjectionPercent != 50 || o.AlwaysEjectOne {
		t.Errorf("outlier defaults %+v", o)
	}
	b := c.Breaker
	if b.MaxConcurrent != 1024 || b.Window != 10*time.Second || b.Buckets != 10 || b.FailureRate != 0.5 ||
		b.MinCalls != 20 || b.OpenTimeout != 5*time.Second || b.HalfOpenMax != 3 || b.HalfOpenSuccesses != 3 {
		t.Errorf("breaker defaults %+v", b)
	}
	if c.PanicThreshold != 0.5 {
		t.Errorf("panic threshold %v", c.PanicThreshold)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero config does not validate: %v", err)
	}
	// Explicit values stay as they are.
	if got := (CheckerConfig{Rise: 5}).WithDefaults().Rise; got != 5 {
		t.Errorf("rise %d", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"negative interval", Config{Check: CheckerConfig{Interval: -time.Second}}, "health: check.interval: must not be negative"},
		{"negative timeout", Config{Check: CheckerConfig{Timeout: -1}}, "health: check.timeout:"},
		{"negative rise", Config{Check: CheckerConfig{Rise: -1}}, "health: check.rise:"},
		{"negative fall", Config{Check: CheckerConfig{Fall: -1}}, "health: check.fall:"},
		{"bad initial state", Config{Check: CheckerConfig{InitialState: "sideways"}}, `health: check.initial_state: must be up, fully-up, down or fully-down, got "sideways"`},
		{"outlier interval", Config{Outlier: OutlierConfig{Interval: -1}}, "health: outlier.interval:"},
		{"outlier rate over 1", Config{Outlier: OutlierConfig{FailureRate: 1.5}}, "health: outlier.failure_rate:"},
		{"outlier rate disabled", Config{Outlier: OutlierConfig{FailureRate: -1, ConsecutiveFailures: -1}}, ""},
		{"min requests", Config{Outlier: OutlierConfig{MinRequests: -1}}, "health: outlier.min_requests:"},
		{"base ejection", Config{Outlier: OutlierConfig{BaseEjectionTime: -1}}, "health: outlier.base_ejection_time:"},
		{"max under base", Config{Outlier: OutlierConfig{MaxEjectionTime: 10 * time.Second}}, "health: outlier.max_ejection_time: must not be less than base_ejection_time (30s), got 10s"},
		{"percent", Config{Outlier: OutlierConfig{MaxEjectionPercent: 101}}, "health: outlier.max_ejection_percent:"},
		{"max concurrent", Config{Breaker: Settings{MaxConcurrent: -1}}, "health: breaker.max_concurrent:"},
		{"window", Config{Breaker: Settings{Window: -1}}, "health: breaker.window:"},
		{"buckets", Config{Breaker: Settings{Buckets: -1}}, "health: breaker.buckets:"},
		{"tiny buckets", Config{Breaker: Settings{Window: time.Millisecond, Buckets: 10}}, "health: breaker.buckets: window 1ms split in 10 buckets"},
		{"breaker rate", Config{Breaker: Settings{FailureRate: 2}}, "health: breaker.failure_rate:"},
		{"min calls", Config{Breaker: Settings{MinCalls: -1}}, "health: breaker.min_calls:"},
		{"open timeout", Config{Breaker: Settings{OpenTimeout: -1}}, "health: breaker.open_timeout:"},
		{"half-open max", Config{Breaker: Settings{HalfOpenMax: -1}}, "health: breaker.half_open_max:"},
		{"half-open successes", Config{Breaker: Settings{HalfOpenSuccesses: -1}}, "health: breaker.half_open_successes:"},
		{"panic threshold", Config{PanicThreshold: 1.1}, "health: panic_threshold:"},
		{"panic disabled", Config{PanicThreshold: -1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want prefix %q", err, tt.wantErr)
			}
		})
	}
	// Standalone, the field has no section prefix; constructors refuse it.
	if err := (Settings{MinCalls: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "health: min_calls:") {
		t.Fatalf("Settings.Validate: %v", err)
	}
	if _, err := NewBreaker("x", Settings{MinCalls: -1}); err == nil {
		t.Fatal("NewBreaker accepted a bad setting")
	}
	if _, err := NewChecker(CheckerConfig{Fall: -1}); err == nil {
		t.Fatal("NewChecker accepted a bad setting")
	}
	if _, err := NewDetector(OutlierConfig{MaxEjectionPercent: -1}); err == nil {
		t.Fatal("NewDetector accepted a bad setting")
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
check:
  interval: 2s
  timeout: 500ms
  rise: 1
  fall: 2
  initial_state: fully-down
outlier:
  consecutive_failures: 7
  failure_rate: 0.6
  min_requests: 10
  base_ejection_time: 10s
  max_ejection_time: 1m
  max_ejection_percent: 34
  always_eject_one: true
breaker:
  max_concurrent: 100
  window: 20s
  buckets: 20
  failure_rate: 0.3
  min_calls: 5
  open_timeout: 1s
  half_open_max: 2
  half_open_successes: 4
panic_threshold: 0.3
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Check:          CheckerConfig{Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 2, InitialState: InitFullyDown},
		Outlier:        OutlierConfig{ConsecutiveFailures: 7, FailureRate: 0.6, MinRequests: 10, BaseEjectionTime: 10 * time.Second, MaxEjectionTime: time.Minute, MaxEjectionPercent: 34, AlwaysEjectOne: true},
		Breaker:        Settings{MaxConcurrent: 100, Window: 20 * time.Second, Buckets: 20, FailureRate: 0.3, MinCalls: 5, OpenTimeout: time.Second, HalfOpenMax: 2, HalfOpenSuccesses: 4},
		PanicThreshold: 0.3,
	}
	got, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Fatalf("decoded\n%s\nwant\n%s", got, wantJSON)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigJSONKeys(t *testing.T) {
	b, err := json.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"check":`, `"initial_state":"up"`, `"outlier":`, `"max_ejection_percent":50`, `"breaker":`, `"half_open_successes":3`, `"panic_threshold":0.5`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("%s lacks %s", b, key)
		}
	}
}
