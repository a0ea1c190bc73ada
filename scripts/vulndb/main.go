// Command vulndb builds a Go vulnerability database in the layout that
// govulncheck's -db file:///dir reads (https://go.dev/security/vuln/database#api)
// from a directory of OSV files, such as data/osv of the golang.org/x/vulndb
// module:
//
//	index/db.json       {"modified": newest entry's modification time}
//	index/modules.json  [{"path": module, "vulns": [{"id", "modified"}]}], sorted
//	index/vulns.json    [{"id", "modified", "aliases"}], sorted by id
//	ID/GO-YYYY-NNNN.json each OSV entry, as it was
//
// The x/vulndb repository's files carry no modification time (its server
// stamps it when it publishes them, and most carry no publication time
// either): the indexes give such an entry the time named by -modified,
// that of the snapshot the files come from.
//
// The modules index leaves out each vulnerability's "fixed" version: it is
// only a hint that lets govulncheck skip entries a module's version is past,
// and without it govulncheck reads every entry of a module it uses and
// decides from the entry's own ranges, which is exact.
//
// Usage: vulndb -osv DIR -out DIR [-modified RFC3339] (-out must not exist yet).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// entry is the part of an OSV entry the indexes need.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

func main() {
	src := flag.String("osv", "", "directory of OSV files named ID.json")
	out := flag.String("out", "", "directory to create")
	modified := flag.String("modified", "", "time (RFC 3339) of entries that carry none")
	flag.Parse()
	var snapshot time.Time
	if *modified != "" {
		t, err := time.Parse(time.RFC3339, *modified)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vulndb: -modified:", err)
			os.Exit(2)
		}
		snapshot = t.UTC()
	}
	if *src == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: vulndb -osv DIR -out DIR [-modified RFC3339]")
		os.Exit(2)
	}
	n, err := build(*src, *out, snapshot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vulndb: %d entries indexed into %s\n", n, *out)
}

func build(src, out string, snapshot time.Time) (int, error) {
	names, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("no OSV files in %s", src)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%s exists", out)
	}
	for _, d := range []string{"ID", "index"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return 0, err
		}
	}
	var db struct {
		Modified time.Time `json:"modified"`
	}
	modules := map[string]*moduleMeta{}
	var vulns []vulnMeta
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if filepath.Base(name) != e.ID+".json" || strings.ContainsAny(e.ID, `/\`) {
			return 0, fmt.Errorf("%s: holds entry %q", name, e.ID)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return 0, err
		}
		if e.Modified.IsZero() {
			e.Modified = snapshot
		}
		if e.Modified.After(db.Modified) {
			db.Modified = e.Modified
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		seen := map[string]bool{}
		for _, a := range e.Affected {
			p := a.Package.Name
			if p == "" || seen[p] {
				continue
			}
			seen[p] = true
			m := modules[p]
			if m == nil {
				m = &moduleMeta{Path: p}
				modules[p] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
		}
	}
	mods := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		slices.SortFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b *moduleMeta) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(vulns, func(a, b vulnMeta) int { return strings.Compare(a.ID, b.ID) })
	for file, v := range map[string]any{"db.json": db, "modules.json": mods, "vulns.json": vulns} {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(out, "index", file), b, 0o644); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}
