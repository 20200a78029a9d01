package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// pkg is what the check needs of a package.
type pkg struct {
	Path    string   // relative to the module: internal/core
	Imports []string // direct, non-test, as relative paths where internal
	Deps    []string // transitive, non-test
}

// violations returns what in pkgs breaks the rules of the package doc.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		var internal []string
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "internal/") {
				internal = append(internal, imp)
			}
		}
		if len(internal) > MaxInternal {
			out = append(out, fmt.Sprintf("%s imports %d internal packages (at most %d): %s",
				p.Path, len(internal), MaxInternal, strings.Join(internal, " ")))
		}
		if !slices.Contains(TaskSources, p.Path) {
			continue
		}
		for _, other := range TaskSources {
			if other != p.Path && (slices.Contains(p.Deps, other) || hasPrefixAny(p.Deps, other+"/")) {
				out = append(out, fmt.Sprintf("task-event source %s depends on source %s", p.Path, other))
			}
		}
	}
	sort.Strings(out)
	return out
}

func hasPrefixAny(list []string, prefix string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// TestRules: the rules catch what they should, on made-up packages.
func TestRules(t *testing.T) {
	many := []string{"internal/a", "internal/b", "internal/c", "internal/d", "internal/e", "internal/f", "internal/g"}
	tests := []struct {
		name string
		pkgs []pkg
		want int
	}{
		{"seven internal", []pkg{{Path: "internal/x", Imports: append(slices.Clone(many), "fmt", "github.com/cilium/ebpf")}}, 0},
		{"eight internal", []pkg{{Path: "internal/x", Imports: append(slices.Clone(many), "internal/h")}}, 1},
		{"source on source", []pkg{{Path: "internal/source/procconn", Deps: []string{"internal/source/tracker"}}}, 1},
		{"source on a source's subpackage", []pkg{{Path: "internal/source/tracker", Deps: []string{"internal/source/procconn/x"}}}, 1},
		{"source on the contract", []pkg{{Path: "internal/source/tracker", Deps: []string{"internal/source/taskevent"}}}, 0},
		{"wiring on both sources", []pkg{{Path: "internal/wiring/tasksource", Imports: []string{"internal/source/tracker", "internal/source/procconn"}}}, 0},
	}
	for _, tc := range tests {
		if got := violations(tc.pkgs); len(got) != tc.want {
			t.Errorf("%s: %d violations %q, want %d", tc.name, len(got), got, tc.want)
		}
	}
}

// TestModule: the module keeps the rules.
func TestModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{.Module.Path}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}", "../../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 4 {
			t.Fatalf("go list line %q", sc.Text())
		}
		mod := f[1] + "/"
		rel := func(s string) string { return strings.TrimPrefix(s, mod) }
		p := pkg{Path: rel(f[0])}
		for _, s := range strings.Split(f[2], ",") {
			p.Imports = append(p.Imports, rel(s))
		}
		for _, s := range strings.Split(f[3], ",") {
			p.Deps = append(p.Deps, rel(s))
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 || !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.Path == "internal/core" }) {
		t.Fatalf("go list found %d packages, without internal/core: wrong directory?", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}
