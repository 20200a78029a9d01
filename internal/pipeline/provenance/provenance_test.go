package provenance

import (
	"github.com/contid/contid/internal/testing/golden"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/pipelinetest"
)

// world places pid 999 (pipelinetest.Unknown) nowhere.
var world = pipelinetest.Table{201: {4, 2, 1}, 300: {7}, 301: {4, 2, 1}, 150: nil, 100: nil}

func annotate(t *testing.T) string {
	an := New(world)
	var b strings.Builder
	for _, ev := range pipelinetest.Events(t, "testdata/handwritten-events.log") {
		out, _ := an.Annotate(ev)
		for i := range out {
			b.Write(records.AppendRaw(nil, &out[i]))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestAnnotate(t *testing.T) {
	got := annotate(t)
	for _, want := range []string{
		// the subject, right after its SYSCALL, not opening the event
		"exe=\"/usr/bin/true\" key=\"contid-e2e\"\ntype=UNKNOWN[2901] msg=audit(1795687201.100:101): pid=201 uid=0 auid=0 ses=1 record=1 contid=4,^2,^1\n",
		// each OBJ_PID target its own; the uncontained kill gets none
		// (with the event subject's pid/uid/auid/ses, for ausearch)
		"ocomm=\"true\"\ntype=UNKNOWN[2901] msg=audit(1795687201.200:102): pid=150 uid=0 auid=0 ses=1 record=2 contid=4,^2,^1\n",
		"ocomm=\"sleep\"\ntype=UNKNOWN[2901] msg=audit(1795687201.200:102): pid=150 uid=0 auid=0 ses=1 record=4 contid=7\n",
		"ocomm=\"sleep\"\ntype=UNKNOWN[2901] msg=audit(1795687201.200:102): pid=150 uid=0 auid=0 ses=1 record=6 contid=4,^2,^1\n",
		// a user record from a contained sender
		"res=success'\ntype=UNKNOWN[2901] msg=audit(1795687201.300:103): pid=201 uid=0 auid=0 ses=1 record=1 contid=4,^2,^1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks:\n%s\ngot:\n%s", want, got)
		}
	}
	if strings.Contains(got, "audit(1795687201.400:104): record=") {
		t.Error("an unknown process got a CONTAINER_ID")
	}
	// Kernel lines pass through byte for byte.
	in, _ := os.ReadFile("testdata/handwritten-events.log")
	for _, l := range strings.Split(strings.TrimSpace(string(in)), "\n") {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("kernel line changed or lost: %s", l)
		}
	}
	golden.Check(t, "testdata/handwritten-events.golden", []byte(got))
}

func TestStats(t *testing.T) {
	an := New(world)
	for _, ev := range pipelinetest.Events(t, "testdata/handwritten-events.log") {
		an.Annotate(ev)
	}
	st := an.Stats()
	// described: 2 SYSCALL, 3 OBJ_PID, USER, LOGIN; the kill's subject is
	// uncontained and the LOGIN's pid unknown.
	if st.Events != 4 || st.Described != 7 || st.Contained != 5 || st.Uncontained != 1 || st.Unknown != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAusearchReadsIt: Debian's real ausearch finds the annotated events by
// record type, pid, key, serial and the subject's ids, with the
// CONTAINER_ID lines inside. (A CONTAINER_ID of a one-record event such as
// USER is a separate event to ausearch, which ends such events at their
// first record; -a SERIAL still finds both.)
func TestAusearchReadsIt(t *testing.T) {
	if _, err := exec.LookPath("ausearch"); err != nil {
		t.Fatal("ausearch (Debian package auditd) is required: scripts/test installs it")
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(path, []byte(annotate(t)), 0o600)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"-m", "2901"}, []string{"record=1 contid=4,^2,^1", "record=4 contid=7", "type=SYSCALL"}},
		{[]string{"-p", "201"}, []string{"type=EXECVE", "record=1 contid=4,^2,^1"}},
		{[]string{"-p", "150"}, []string{"type=OBJ_PID", "record=6 contid=4,^2,^1"}},
		{[]string{"-k", "contid-kill"}, []string{"record=6 contid=4,^2,^1", "type=OBJ_PID"}},
		{[]string{"-a", "101"}, []string{"type=PROCTITLE", "record=1 contid=4,^2,^1"}},
		{[]string{"-a", "103"}, []string{"type=USER", "record=1 contid=4,^2,^1"}},
		{[]string{"-ui", "0", "-x", "/usr/bin/true"}, []string{"type=PATH", "record=1 contid=4,^2,^1"}},
		{[]string{"-ua", "0", "--session", "1", "-sv", "yes", "-c", "kill"}, []string{"record=4 contid=7"}},
	} {
		out, err := exec.Command("ausearch", append([]string{"-if", path}, tt.args...)...).CombinedOutput()
		if err != nil {
			t.Errorf("ausearch %v: %v\n%s", tt.args, err, out)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("ausearch %v lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}
