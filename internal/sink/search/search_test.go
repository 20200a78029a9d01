package search_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/surface/cli"
	"github.com/contid/contid/internal/testing/golden"
)

// runSearch runs contid search as the command line does and returns its
// output, standard error and exit status.
func runSearch(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCmd(t, "search", args...)
}

func runCmd(t *testing.T, cmd string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(append([]string{cmd}, args...), cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

// queries reads testdata/queries.txt.
func queries(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile("testdata/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	var qs [][]string
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		qs = append(qs, strings.Fields(l))
	}
	return qs
}

// copyTestdata copies the test logs to a fresh directory, so that
// sidecars written by a search stay out of the tree.
func copyTestdata(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"host", "auditd"} {
		ents, err := os.ReadDir(filepath.Join("testdata", sub))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("testdata", sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, sub, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestQueriesGolden runs every query of testdata/queries.txt over the
// hand-written logs (rotations, nested chains, interleaved events,
// forged records, a malformed and a torn line) and compares output and
// exit status with the golden file. The indexed search (a second run,
// which uses the sidecars the first wrote) must print the same.
func TestQueriesGolden(t *testing.T) {
	dir := copyTestdata(t)
	var all bytes.Buffer
	for _, q := range queries(t) {
		cmd := "search"
		name := strings.Join(q, " ")
		if q[0] == "report" {
			cmd, q = "report", q[1:]
		}
		args := append([]string{"-if", filepath.Join(dir, q[0])}, q[1:]...)
		out, errs, code := runCmd(t, cmd, append(args, "--no-index")...)
		fmt.Fprintf(&all, "## %s\n%s", name, out)
		errs = strings.ReplaceAll(errs, dir+"/", "")
		fmt.Fprintf(&all, "## stderr\n%s## exit %d\n\n", errs, code)
		for pass := 0; pass < 2; pass++ {
			iout, ierrs, icode := runCmd(t, cmd, args...)
			if iout != out || icode != code || strings.ReplaceAll(ierrs, dir+"/", "") != errs {
				t.Errorf("%v: indexed search (pass %d) differs from the scan:\n%s%s(exit %d)\nscan:\n%s%s(exit %d)", q, pass, iout, ierrs, icode, out, errs, code)
			}
		}
	}
	golden.Check(t, "testdata/queries.golden", all.Bytes())
}
