package records

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/source/auditnl/audittest"
)

// TestAusearchGroupsContainerID checks spec §5 against the real ausearch:
// a CONTAINER_ID record written by AppendRaw right after the record it
// describes is found by -m 2901 and by -a SERIAL, in the same event as the
// SYSCALL it follows.
func TestAusearchGroupsContainerID(t *testing.T) {
	ausearch := audittest.Ausearch(t)
	st := Stamp{Sec: 1700000000, Msec: 123, Serial: 4242}
	recs := []Record{
		{Type: 1300, Stamp: st, Fields: []Field{
			pf("arch", "c000003e"), pf("syscall", "59"), pf("success", "yes"), pf("exit", "0"),
			pf("a0", "55d0c2a8e0a0"), pf("a1", "55d0c2a8e0c8"), pf("a2", "55d0c2a8e0f0"), pf("a3", "8"),
			pf("items", "0"), pf("ppid", "2310"), pf("pid", "2342"), pf("auid", "1000"), pf("uid", "0"),
			pf("gid", "0"), pf("euid", "0"), pf("suid", "0"), pf("fsuid", "0"), pf("egid", "0"), pf("sgid", "0"),
			pf("fsgid", "0"), pf("tty", "pts0"), pf("ses", "3"), ef("comm", "my prog", Untrusted),
			ef("exe", "/usr/bin/cat", Untrusted), pf("subj", "unconfined"), ef("key", "exec", Untrusted),
		}},
		{Type: ContainerID, Stamp: st, Fields: []Field{pf("record", "1"), pf("contid", "4,^2")}},
		{Type: 1320, Stamp: st},
		// An unrelated event that must not be reported.
		{Type: 1300, Stamp: Stamp{Sec: 1700000001, Serial: 4243}, Fields: []Field{pf("syscall", "2"), pf("pid", "7")}},
	}
	var log bytes.Buffer
	var lines []string
	for i := range recs {
		line := string(AppendRaw(nil, &recs[i]))
		lines = append(lines, line)
		log.WriteString(line + "\n")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-m", "2901"}, {"-a", "4242"}} {
		cmd := exec.Command(ausearch, append([]string{"-if", path}, args...)...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ausearch %v: %v\n%s%s", args, err, out, ee.Stderr)
		} else if err != nil {
			t.Fatal(err)
		}
		events := strings.Split(string(out), "----\n")
		var found []string
		for _, ev := range events {
			if strings.Contains(ev, lines[1]+"\n") {
				found = append(found, ev)
			}
		}
		if len(found) != 1 {
			t.Fatalf("ausearch %v: CONTAINER_ID line in %d events, want 1:\n%s", args, len(found), out)
		}
		for _, want := range lines[:3] {
			if !strings.Contains(found[0], want+"\n") {
				t.Errorf("ausearch %v: event lacks %q:\n%s", args, want, found[0])
			}
		}
		if strings.Contains(string(out), lines[3]) {
			t.Errorf("ausearch %v reported the unrelated event:\n%s", args, out)
		}
	}
}
