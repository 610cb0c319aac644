package arch

import (
	"bufio"
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stagehand-dev/stagehand/"

// rules parses the imports table of docs/ARCHITECTURE.md: package →
// the stagehand packages it may import ("any" for no rule).
func rules(t *testing.T, root string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "<!-- imports:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if len(out) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") || strings.TrimSpace(cells[0]) == "package" {
			continue
		}
		var names []string
		for _, c := range strings.Split(cells[0], ",") {
			names = append(names, strings.Trim(strings.TrimSpace(c), "`"))
		}
		var allowed []string
		switch v := strings.TrimSpace(cells[2]); v {
		case "—":
		case "any":
			allowed = []string{"any"}
		default:
			for _, c := range strings.Split(v, ",") {
				allowed = append(allowed, strings.Trim(strings.TrimSpace(c), "`"))
			}
		}
		for _, n := range names {
			out[n] = allowed
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/ARCHITECTURE.md has no imports table after its <!-- imports --> marker")
	}
	return out
}

// rowFor is the table row that governs the package at rel: its own, or
// that of a parent written as "dir/...".
func rowFor(rs map[string][]string, rel string) ([]string, bool) {
	if a, ok := rs[rel]; ok {
		return a, true
	}
	for p := rel; p != "."; p = filepath.Dir(p) {
		if a, ok := rs[p+"/..."]; ok {
			return a, true
		}
	}
	return nil, false
}

// violations walks the module at root and lists every package without
// a row in rs and every import of a stagehand package its row does not
// allow; checked counts the packages it read.
func violations(root string, rs map[string][]string) (bad []string, checked int, err error) {
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "docs" || name == "examples") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here (build constraints included)
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel == "internal/arch" {
			return nil
		}
		allowed, ok := rowFor(rs, rel)
		if !ok {
			bad = append(bad, "package "+rel+" has no row in docs/ARCHITECTURE.md's imports table")
			return nil
		}
		checked++
		if slices.Contains(allowed, "any") {
			return nil
		}
		for _, imp := range pkg.Imports {
			if dep, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allowed, dep) {
				bad = append(bad, rel+" imports "+dep+", which its row in docs/ARCHITECTURE.md does not allow")
			}
		}
		return nil
	})
	return bad, checked, err
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestImportsFollowTheMap: every package's non-test imports of stagehand
// packages are in its row of docs/ARCHITECTURE.md, and every package has
// a row.
func TestImportsFollowTheMap(t *testing.T) {
	root := moduleRoot(t)
	bad, checked, err := violations(root, rules(t, root))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Error(b)
	}
	if checked < 15 {
		t.Fatalf("checked only %d packages: the walk or the table is wrong", checked)
	}
}

// TestRulesCatchAViolation: the check is not vacuous. With dhcp's row
// emptied, its import of ipxe is reported, and a package left out of
// the table is reported as having no row.
func TestRulesCatchAViolation(t *testing.T) {
	root := moduleRoot(t)
	rs := rules(t, root)
	rs["dhcp"] = nil
	delete(rs, "neigh")
	bad, _, err := violations(root, rs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dhcp imports ipxe, which its row in docs/ARCHITECTURE.md does not allow",
		"package neigh has no row in docs/ARCHITECTURE.md's imports table",
	}
	for _, w := range want {
		if !slices.Contains(bad, w) {
			t.Errorf("not reported: %q (got %q)", w, bad)
		}
	}
}
