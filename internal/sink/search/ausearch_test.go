package search_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
)

func TestMain(m *testing.M) {
	// Dates on the command line and in -i output are local time: pin it.
	time.Local = time.UTC
	os.Exit(m.Run())
}

func ausearch(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return "" // no matches
	}
	if err != nil {
		t.Fatalf("ausearch %v: %v", args, err)
	}
	return string(out)
}

var serialRE = regexp.MustCompile(`msg=audit\(\d+\.\d+:(\d+)\)`)

// serials returns the sorted distinct event serials in a log text.
func serials(s string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range serialRE.FindAllStringSubmatch(s, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// TestAusearchAgrees runs the criteria contid search shares with ausearch
// over one log, with both tools, and compares the events found; then
// pipes contid search's raw output into ausearch, which must read every
// line of it back.
func TestAusearchAgrees(t *testing.T) {
	bin := audittest.Ausearch(t)
	dir := t.TempDir()
	var log bytes.Buffer
	for _, f := range []string{"host/audit.log.2", "host/audit.log.1", "host/audit.log", "auditd/audit.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, []byte("\n")) {
			b = b[:bytes.LastIndexByte(b, '\n')+1] // ausearch would take the torn line whole
		}
		log.Write(b)
	}
	path := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(path, log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"-k", "exec"}, {"-k", "kill"}, {"-k", "files"}, {"-p", "302"}, {"-p", "150"},
		{"-pp", "300"}, {"-m", "2901"}, {"-m", "SYSCALL"}, {"-m", "2900,2905"}, {"-sc", "execve"}, {"-sc", "257"},
		{"-sv", "no"}, {"-sv", "yes", "-k", "exec"}, {"-ui", "1000"}, {"-ua", "1000"}, {"-x", "/usr/bin/cat"},
		{"-a", "104"}, {"-ts", "11/26/26", "10:00:02", "-te", "11/26/26", "10:00:03"}, {"-ts", "11/26/2026", "11:00:00", "-k", "exec"},
	}
	for _, args := range cases {
		aargs := args
		for i, a := range aargs { // ausearch takes the C locale's two-digit year
			if strings.HasSuffix(a, "/2026") {
				aargs = append([]string(nil), aargs...)
				aargs[i] = strings.TrimSuffix(a, "2026") + "26"
			}
		}
		want := serials(ausearch(t, bin, append([]string{"-if", path, "--raw"}, aargs...)...))
		out, errs, code := runSearch(t, append([]string{"-if", path, "--no-index"}, args...)...)
		got := serials(out)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%v: contid search found events %v, ausearch %v", args, got, want)
		}
		if (code == 0) != (len(want) > 0) {
			t.Errorf("%v: exit %d with %d events (stderr %q)", args, code, len(got), errs)
		}
	}

	// Piped into ausearch, the output is a log it reads whole.
	out, _, code := runSearch(t, "-if", path, "--no-index", "--contid", "2")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	piped := filepath.Join(dir, "piped.log")
	if err := os.WriteFile(piped, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	back := ausearch(t, bin, "-if", piped, "--raw", "-ts", "01/01/04")
	sortLines := func(s string) string {
		l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		sort.Strings(l)
		return strings.Join(l, "\n")
	}
	if sortLines(back) != sortLines(out) {
		t.Errorf("ausearch read back other lines than contid search wrote:\n%s\nwrote:\n%s", back, out)
	}
	// And an ausearch filter on the piped output finds what it finds on
	// the whole log among those events.
	for _, args := range [][]string{{"-k", "exec"}, {"-m", "2901"}, {"-sv", "no"}} {
		onPiped := serials(ausearch(t, bin, append([]string{"-if", piped, "--raw"}, args...)...))
		both, _, _ := runSearch(t, append([]string{"-if", path, "--no-index", "--contid", "2"}, args...)...)
		if strings.Join(onPiped, " ") != strings.Join(serials(both), " ") {
			t.Errorf("%v: ausearch on the piped output found %v, contid search --contid 2 %v", args, onPiped, serials(both))
		}
	}
}
