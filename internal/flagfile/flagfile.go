// Package flagfile gives a flag.FlagSet a YAML config file: every flag has
// a key of the same name (max-conns: 5000, backend: [tcp://a:8990,
// tcp://b:8990], check-interval: 2s), and flags given on the command line
// override the file. It knows no flag by name: a flag registered on the set
// has its key, with no code here.
//
// The file is one YAML mapping. A key's value is a scalar, set with one
// fs.Set (booleans and durations are scalars like the rest: true, 2s), or,
// for a repeatable flag, a sequence of scalars, set with one fs.Set each.
// A flag is repeatable when its Value is neither a boolean flag nor one of
// the flag package's own types (which implement flag.Getter). Unknown keys,
// repeated keys, nested mappings, empty values, anchors and aliases are
// refused with the file name, line and key.
package flagfile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a config file: a larger one is refused unread, so that
// a wrong path (a log, a device) cannot take the process's memory.
const MaxFileSize = 1 << 20

// ConfigFlag is the name of the flag that names the file.
const ConfigFlag = "config"

// Setting is one key of a config file and the values to set it to.
type Setting struct {
	Key    string
	Values []string // one for a scalar; one per item for a sequence
	List   bool     // the value was a sequence
	Line   int
}

// Decode reads a config file's settings, in file order. name is the file's
// name for errors. It checks the shape only; Apply checks the keys and
// values against a FlagSet.
func Decode(name string, data []byte) ([]Setting, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes: a config file holds at most %d", name, len(data), MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty (or only comments): no settings
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, fmt.Errorf("%s:%d: a config file holds one YAML document", name, line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil // "~" or "null" alone: nothing set
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of flag names to values, got %s", name, root.Line, kindName(root))
	}
	if err := noAnchors(name, root); err != nil {
		return nil, err
	}
	seen := map[string]int{}
	out := make([]Setting, 0, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Value == "" {
			return nil, fmt.Errorf("%s:%d: a key must be a flag name, got %s", name, k.Line, kindName(k))
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s:%d: key %q: given twice (first on line %d)", name, k.Line, key, first)
		}
		seen[key] = k.Line
		s := Setting{Key: key, Line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				return nil, fmt.Errorf("%s:%d: key %q: no value (to mean the default, leave the key out)", name, v.Line, key)
			}
			s.Values = []string{v.Value}
		case yaml.SequenceNode:
			s.List = true
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
					return nil, fmt.Errorf("%s:%d: key %q: a list item must be a value, got %s", name, item.Line, key, kindName(item))
				}
				s.Values = append(s.Values, item.Value)
			}
		default:
			return nil, fmt.Errorf("%s:%d: key %q: want a value or a list of values, got %s", name, v.Line, key, kindName(v))
		}
		out = append(out, s)
	}
	return out, nil
}

// noAnchors refuses anchors and aliases anywhere under n: a flat file of
// flags needs neither, and aliases are how YAML files grow without bound.
func noAnchors(name string, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return fmt.Errorf("%s:%d: anchors and aliases are not supported in a config file", name, n.Line)
	}
	for _, c := range n.Content {
		if err := noAnchors(name, c); err != nil {
			return err
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "a document"
}

// repeatable reports whether a sequence may set f: its Value is neither a
// boolean flag nor one of the flag package's own (single-valued) types.
func repeatable(f *flag.Flag) bool {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	_, builtin := f.Value.(flag.Getter)
	return !builtin
}

// Apply sets the flags of fs from settings, skipping the flags in skip
// (those the command line set). name is the file's name for errors. It
// checks every key and shape before it sets anything, so that a file with
// an unknown key changes no flag; a value that fs.Set refuses stops it
// there.
func Apply(fs *flag.FlagSet, name string, settings []Setting, skip map[string]bool) error {
	for _, s := range settings {
		f := fs.Lookup(s.Key)
		switch {
		case f == nil:
			return fmt.Errorf("%s:%d: unknown key %q: no flag --%s (keys are the flag names: graftlb %s --help)", name, s.Line, s.Key, s.Key, fs.Name())
		case s.Key == ConfigFlag:
			return fmt.Errorf("%s:%d: key %q: a config file cannot name another", name, s.Line, s.Key)
		case s.List && !repeatable(f):
			return fmt.Errorf("%s:%d: key %q: takes one value, not a list", name, s.Line, s.Key)
		}
	}
	for _, s := range settings {
		if skip[s.Key] {
			continue
		}
		for _, v := range s.Values {
			if err := fs.Set(s.Key, v); err != nil {
				return fmt.Errorf("%s:%d: key %q: invalid value %q: %w", name, s.Line, s.Key, v, err)
			}
		}
	}
	return nil
}

// ReadFile reads and decodes the config file at path.
func ReadFile(path string) ([]Setting, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return Decode(path, data)
}

// Resetter is a flag.Value that can go back to its default; repeatable
// flags implement it, since setting their default again would add to
// their values instead of replacing them.
type Resetter interface {
	Reset()
}

// Set is a FlagSet parsed from a command line and a config file, which it
// can parse again from the same command line and the file's new contents
// (a reload).
type Set struct {
	fs    *flag.FlagSet
	args  []string
	given map[string]bool // set on the command line
}

// Parse parses args into fs, then the config file named by fs's --config
// flag, when there is such a flag and it is set (on the command line: the
// file cannot name itself). A flag set on the command line keeps that
// value; the file sets the others it names. The file's errors are a
// *FileError.
func Parse(fs *flag.FlagSet, args []string) (*Set, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	s := &Set{fs: fs, args: slices.Clone(args), given: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { s.given[f.Name] = true })
	if err := s.applyFile(); err != nil {
		return nil, &FileError{err}
	}
	return s, nil
}

// FileError is Parse's error for the config file, as opposed to the
// command line's (which the FlagSet has reported already).
type FileError struct{ Err error }

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Path returns the config file's path ("" without one).
func (s *Set) Path() string {
	if f := s.fs.Lookup(ConfigFlag); f != nil {
		return f.Value.String()
	}
	return ""
}

// Given reports whether the command line set flag name.
func (s *Set) Given(name string) bool { return s.given[name] }

func (s *Set) applyFile() error {
	path := s.Path()
	if path == "" {
		return nil
	}
	settings, err := ReadFile(path)
	if err != nil {
		return err
	}
	return Apply(s.fs, path, settings, s.given)
}

// Reparse reads the config file again: every flag goes back to its
// default, the command line is parsed again and the file applied under it.
// The file is decoded first, so that a file that cannot be read or parsed
// changes no flag; a value error found after the reset leaves the flags
// part set, and the caller must not use them (it keeps what it runs).
func (s *Set) Reparse() error {
	if path := s.Path(); path != "" {
		if _, err := ReadFile(path); err != nil {
			return err
		}
	}
	if err := Reset(s.fs); err != nil {
		return err
	}
	if err := s.fs.Parse(s.args); err != nil {
		return err
	}
	return s.applyFile()
}

// Reset sets every flag of fs back to its default: a Resetter by Reset,
// any other by fs.Set of its DefValue.
func Reset(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if r, ok := f.Value.(Resetter); ok {
			r.Reset()
			return
		}
		if err := f.Value.Set(f.DefValue); err != nil {
			errs = append(errs, fmt.Errorf("flag --%s cannot go back to its default %q (give its Value a Reset method): %w", f.Name, f.DefValue, err))
		}
	})
	return errors.Join(errs...)
}
