// Package golden compares test output with golden files. `go test -update`
// rewrites the files from the current output instead; review the diff
// before committing it. It is for tests only.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// Check fails t at the first line where got differs from the file at path,
// or rewrites the file under -update.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if i, g, w, ok := firstDiff(got, want); !ok {
		t.Fatalf("%s line %d differs:\n got %q\nwant %q\n(run with -update after checking)", path, i+1, g, w)
	}
}

// Equal fails t at the first line where got differs from want; what
// names want in the message.
func Equal(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if i, g, w, ok := firstDiff(got, want); !ok {
		t.Fatalf("line %d differs from %s:\n got %q\nwant %q", i+1, what, g, w)
	}
}

// firstDiff returns the first line (from 0) where got and want differ,
// with both lines; ok when they are the same bytes.
func firstDiff(got, want []byte) (i int, g, w string, ok bool) {
	if bytes.Equal(got, want) {
		return 0, "", "", true
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i = 0; i < len(gl) || i < len(wl); i++ {
		g, w = "", ""
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			return i, g, w, false
		}
	}
	return i, g, w, false // differ only in a final newline
}

// Each runs f as a subtest for every file matching pattern (such as
// "testdata/*.log"), named after the file without its directory and
// extension, with the file's contents. No match fails t: a test that finds
// no input must not pass.
func Each(t *testing.T, pattern string, f func(t *testing.T, name string, data []byte)) {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s: %v", pattern, err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f(t, name, data)
		})
	}
}
