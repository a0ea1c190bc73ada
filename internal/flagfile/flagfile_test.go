package flagfile

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// list is a repeatable flag, as the commands' --backend is.
type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (l *list) Reset()             { *l = nil }

type vars struct {
	maxConns int
	interval time.Duration
	trace    bool
	rate     float64
	name     string
	backends list
}

func newSet() (*flag.FlagSet, *vars) {
	v := &vars{}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String(ConfigFlag, "", "config file")
	fs.IntVar(&v.maxConns, "max-conns", 10000, "")
	fs.DurationVar(&v.interval, "check-interval", time.Second, "")
	fs.BoolVar(&v.trace, "trace-ids", false, "")
	fs.Float64Var(&v.rate, "retry-budget", 0.2, "")
	fs.StringVar(&v.name, "name", "graftlb", "")
	fs.Var(&v.backends, "backend", "")
	return fs, v
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graftlb.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFileSetsEveryKind sets a flag of each kind from a file: ints,
// durations, booleans and floats as YAML scalars, a list as repeated Sets.
func TestFileSetsEveryKind(t *testing.T) {
	path := writeFile(t, `# a proxy
max-conns: 5000
check-interval: 2s
trace-ids: true
retry-budget: 0.5
name: "edge-1"
backend: [tcp://a:8990, "tcp://b:8990#name=gw2,weight=2"]
`)
	fs, v := newSet()
	if _, err := Parse(fs, []string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	if v.maxConns != 5000 || v.interval != 2*time.Second || !v.trace || v.rate != 0.5 || v.name != "edge-1" {
		t.Errorf("got %+v", *v)
	}
	if want := (list{"tcp://a:8990", "tcp://b:8990#name=gw2,weight=2"}); !slices.Equal(v.backends, want) {
		t.Errorf("backend = %q, want %q", v.backends, want)
	}
}

// TestCommandLineOverridesFile: a flag given on the command line keeps
// its value, a list included (the file's items are not added to it).
func TestCommandLineOverridesFile(t *testing.T) {
	path := writeFile(t, "max-conns: 5000\nbackend: [tcp://a:1, tcp://b:1]\nname: file\n")
	fs, v := newSet()
	s, err := Parse(fs, []string{"--max-conns", "7", "--config", path, "--backend", "tcp://c:1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.maxConns != 7 || v.name != "file" || !slices.Equal(v.backends, list{"tcp://c:1"}) {
		t.Errorf("got %+v", *v)
	}
	if !s.Given("max-conns") || s.Given("name") {
		t.Errorf("Given: max-conns %v, name %v", s.Given("max-conns"), s.Given("name"))
	}
}

// TestFileErrors: each refusal names the file, the line and the key.
func TestFileErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"max-conns: 5\nmax-conn: 6\n", `:2: unknown key "max-conn"`},
		{"name: a\n\nmax-conns: many\n", `:3: key "max-conns": invalid value "many"`},
		{"check-interval: 2\n", `:1: key "check-interval": invalid value "2"`},
		{"trace-ids: yes\n", `:1: key "trace-ids": invalid value "yes"`},
		{"max-conns: [1, 2]\n", `:1: key "max-conns": takes one value, not a list`},
		{"trace-ids: [true]\n", `:1: key "trace-ids": takes one value, not a list`},
		{"name:\n  first: x\n", `:2: key "name": want a value or a list of values, got a mapping`},
		{"name:\n", `:1: key "name": no value`},
		{"backend: [tcp://a:1, [x]]\n", `:1: key "backend": a list item must be a value, got a list`},
		{"name: a\nname: b\n", `:2: key "name": given twice (first on line 1)`},
		{"- name\n", `:1: want a mapping of flag names to values, got a list`},
		{"name: &x a\nbackend: *x\n", `:1: anchors and aliases are not supported`},
		{"config: other.yaml\n", `:1: key "config": a config file cannot name another`},
		{"name: a\n---\nname: b\n", `:2: a config file holds one YAML document`},
		{"name: [a\n", `yaml:`},
	} {
		path := writeFile(t, c.text)
		fs, _ := newSet()
		_, err := Parse(fs, []string{"--config", path})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), path) {
			t.Errorf("%q: error %v, want %s%s", c.text, err, path, c.want)
		}
	}
}

// TestUnknownKeyChangesNothing: a file with an unknown key sets none of
// its other keys, wherever the unknown one is.
func TestUnknownKeyChangesNothing(t *testing.T) {
	path := writeFile(t, "max-conns: 5\nbogus: 1\n")
	fs, v := newSet()
	if _, err := Parse(fs, []string{"--config", path}); err == nil {
		t.Fatal("no error")
	}
	if v.maxConns != 10000 {
		t.Errorf("max-conns = %d, want the default", v.maxConns)
	}
}

// TestEmptyFile: an empty file, or one of comments, sets nothing.
func TestEmptyFile(t *testing.T) {
	for _, text := range []string{"", "# nothing yet\n", "~\n"} {
		fs, v := newSet()
		if _, err := Parse(fs, []string{"--config", writeFile(t, text)}); err != nil {
			t.Errorf("%q: %v", text, err)
		}
		if v.maxConns != 10000 {
			t.Errorf("%q: max-conns = %d", text, v.maxConns)
		}
	}
}

// TestMissingAndHugeFiles: a path that does not exist and a file over
// MaxFileSize are refused.
func TestMissingAndHugeFiles(t *testing.T) {
	fs, _ := newSet()
	if _, err := Parse(fs, []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}); err == nil {
		t.Error("a missing file: no error")
	}
	path := writeFile(t, "name: "+strings.Repeat("x", MaxFileSize)+"\n")
	fs, _ = newSet()
	if _, err := Parse(fs, []string{"--config", path}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a huge file: %v", err)
	}
}

// TestReparse: a reload resets every flag, takes the file's new contents
// and keeps the command line on top; a file that no longer parses leaves
// the flags as they were.
func TestReparse(t *testing.T) {
	path := writeFile(t, "max-conns: 5000\nbackend: [tcp://a:1, tcp://b:1]\ntrace-ids: true\n")
	fs, v := newSet()
	s, err := Parse(fs, []string{"--config", path, "--name", "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("backend: [tcp://c:1]\nname: file\nretry-budget: 0.7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reparse(); err != nil {
		t.Fatal(err)
	}
	if v.maxConns != 10000 || v.trace || v.name != "cli" || v.rate != 0.7 || !slices.Equal(v.backends, list{"tcp://c:1"}) {
		t.Errorf("after the reload: %+v", *v)
	}
	if err := os.WriteFile(path, []byte("backend: [tcp://d:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reparse(); err == nil {
		t.Fatal("a broken file: no error")
	}
	if !slices.Equal(v.backends, list{"tcp://c:1"}) || v.rate != 0.7 {
		t.Errorf("a broken file changed the flags: %+v", *v)
	}
}

// TestResetNeedsResetter: a flag whose default cannot be set again (a
// repeatable Value without Reset) is named by Reset, not skipped.
func TestResetNeedsResetter(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(noReset{}, "odd", "")
	if err := Reset(fs); err == nil || !strings.Contains(err.Error(), "--odd") {
		t.Errorf("Reset: %v", err)
	}
}

type noReset struct{}

func (noReset) String() string { return "" }
func (noReset) Set(v string) error {
	if v == "" {
		return os.ErrInvalid
	}
	return nil
}

// FuzzDecode: any file decodes to settings or an error, never a panic,
// and every setting it returns has a key and a line.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"max-conns: 5000\nbackend: [tcp://a:8990, tcp://b:8990]\ncheck-interval: 2s\n",
		"name: a\n---\nb: c\n", "- x\n", "a: &x [1]\nb: *x\n", "a:\n  b: c\n", "? [a]\n: b\n",
		"a: !!binary aGVsbG8=\n", "'': x\n", "a: ~\n", "\ufeffa: 1\n", "{a: 1, b: [2, 3]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		settings, err := Decode("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, s := range settings {
			if s.Key == "" || s.Line < 1 || (!s.List && len(s.Values) != 1) {
				t.Fatalf("bad setting %+v", s)
			}
		}
		fs, _ := newSet()
		_ = Apply(fs, "f.yaml", settings, nil)
	})
}
