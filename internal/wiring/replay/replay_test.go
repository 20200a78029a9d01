package replay

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// primaryRun is a primary-mode daemon's trace: a registration whose
// CONTAINER_OP (and NS_INFO) went into the kernel's stream, the first
// coming back in a batch, an execve of the
// registered process, a loss written to the host log, a tick.
const primaryRun = `# a trace recorded with kernel audit on
{"op":"task","time":"2026-12-04T10:00:00Z","pid":100,"start":2000,"uid":0,"auid":0,"ses":1,"comm":"bash","exe":"/usr/bin/bash"}
{"op":"audit","time":"2026-12-04T10:00:00Z","mode":"primary","self":4242,"timeout_ms":2000}
{"op":"fork","time":"2026-12-04T10:00:01Z","parent":100,"child":200}
{"op":"set","time":"2026-12-04T10:00:01.5Z","caller":100,"cap":true,"target":200,"contid":"5"SENT}
{"op":"batch","time":"2026-12-04T10:00:01.6Z","records":[{"type":2900,"data":"audit(1796378401.500:10): pid=4242 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=200 contid=5 old-contid=-1 pid=100 uid=0 auid=0 ses=1 comm=\"bash\" exe=\"/usr/bin/bash\" res=success'"}]}
{"op":"batch","time":"2026-12-04T10:00:02.1Z","records":[{"type":1300,"data":"audit(1796378402.000:11): arch=c000003e syscall=59 success=yes exit=0 items=0 ppid=100 pid=200 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"true\" exe=\"/usr/bin/true\" key=\"exec\""},{"type":1320,"data":"audit(1796378402.000:11): "}]}
{"op":"loss","time":"2026-12-04T10:00:03Z","kind":"enobufs","count":2}
{"op":"tick","time":"2026-12-04T10:00:05Z","idle":true}
{"op":"stop","time":"2026-12-04T10:00:06Z"}
`

func replayed(t *testing.T, trace string, opt Options) string {
	t.Helper()
	var out bytes.Buffer
	if _, err := Run(strings.NewReader(trace), "run.trace", &out, opt); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestAuditRun: the kernel's events get their CONTAINER_ID; the own record
// that went through the kernel is written once, as the kernel stamped it;
// the loss written locally has contid's serial; the same trace gives the
// same bytes.
func TestAuditRun(t *testing.T) {
	trace := strings.Replace(primaryRun, "SENT", `,"sent":[true,true]`, 1)
	out := replayed(t, trace, Options{})
	if again := replayed(t, trace, Options{}); again != out {
		t.Fatalf("two replays differ:\n%s\n%s", out, again)
	}
	if n := strings.Count(out, "op=set"); n != 1 {
		t.Fatalf("%d CONTAINER_OP op=set records, want 1 (the kernel's):\n%s", n, out)
	}
	for _, want := range []string{
		"msg=audit(1796378401.500:10): pid=4242",            // the own record, back from the kernel
		"type=UNKNOWN[2901] msg=audit(1796378402.000:11): ", // the execve's CONTAINER_ID
		"contid=5",
		fmt.Sprintf("msg=audit(1796378403.000:%d): kind=enobufs count=2 source=primary", records.OwnSerialBase),
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("the replay lacks %q:\n%s", want, out)
		}
	}
	if j := replayed(t, trace, Options{Format: JSON}); strings.Count(j, "\n") != strings.Count(out, "\n") || !strings.Contains(j, `"contid"`) {
		t.Fatalf("JSON replay:\n%s", j)
	}
}

// TestAuditRunLocal: an own record the daemon wrote locally (not sent) is
// written by the replay too, stamped from contid's serial space.
func TestAuditRunLocal(t *testing.T) {
	out := replayed(t, strings.Replace(primaryRun, "SENT", "", 1), Options{})
	if n := strings.Count(out, "op=set"); n != 2 {
		t.Fatalf("%d op=set records, want 2 (the local one and the kernel's):\n%s", n, out)
	}
	if !strings.Contains(out, fmt.Sprintf("msg=audit(1796378401.500:%d): ", records.OwnSerialBase)) ||
		!strings.Contains(out, fmt.Sprintf("msg=audit(1796378403.000:%d): kind=enobufs", records.OwnSerialBase+2)) {
		t.Fatalf("the local records lack contid's serials in order:\n%s", out)
	}
}

// TestAuditRunErrors: inconsistent traces stop the replay with the line.
func TestAuditRunErrors(t *testing.T) {
	trace := strings.Replace(primaryRun, "SENT", "", 1)
	for _, tt := range []struct {
		name, trace, want string
	}{
		{"unknown op", strings.Replace(trace, `{"op":"tick"`, `{"op":"tock"`, 1), `run.trace:9: unknown op "tock"`},
		{"no audit", strings.Replace(trace, `{"op":"audit","time":"2026-12-04T10:00:00Z","mode":"primary","self":4242,"timeout_ms":2000}`, "", 1), `run.trace:6: trace.Batch: audit inputs need the audit replay`},
		{"two audits", strings.Replace(trace, `{"op":"stop"`, `{"op":"audit","mode":"primary","self":1,"time":"2026-12-04T10:00:06Z"}`+"\n"+`{"op":"stop"`, 1), `a second "audit"`},
		{"tick after stop", trace + `{"op":"tick","time":"2026-12-04T10:00:07Z","idle":true}` + "\n", `run.trace:11: an audit input outside the audit path`},
		{"unsent beyond sent", trace + `{"op":"unsent","time":"2026-12-04T10:00:07Z","count":1}` + "\n", `1 own records unsent, but only 0 were sent`},
	} {
		var out bytes.Buffer
		_, err := Run(strings.NewReader(tt.trace), "run.trace", &out, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzRun: no trace makes the replay panic, and a replay that succeeds
// gives the same bytes twice.
func FuzzRun(f *testing.F) {
	f.Add([]byte(strings.Replace(primaryRun, "SENT", `,"sent":[true,true]`, 1)))
	f.Add([]byte(strings.Replace(primaryRun, "SENT", "", 1)))
	f.Add([]byte(strings.Replace(primaryRun, "SENT", "", 1) + `{"op":"unsent","time":"2026-12-04T10:00:07Z","count":1}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var one, two bytes.Buffer
		_, err1 := Run(bytes.NewReader(b), "f", &one, Options{})
		_, err2 := Run(bytes.NewReader(b), "f", &two, Options{})
		if (err1 == nil) != (err2 == nil) || one.String() != two.String() {
			t.Fatalf("two replays differ: %v %v\n%s\n%s", err1, err2, one.String(), two.String())
		}
	})
}

// TestNoLeftovers: the host log a replay writes (every recorded record of
// the host) does not outlive the replay, even when the trace is bad.
func TestNoLeftovers(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	good := strings.Replace(primaryRun, "SENT", "", 1)
	bad := good + `{"op":"tick","time":"2026-12-04T10:00:07Z","idle":true}` + "\n"
	for _, trace := range []string{good, bad} {
		var out bytes.Buffer
		Run(strings.NewReader(trace), "run.trace", &out, Options{})
		if out.Len() == 0 {
			t.Fatal("no output: the test would prove nothing")
		}
		left, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			t.Fatalf("the replay left %v in %s", left, dir)
		}
	}
	// A reader that goes away (a closed pipe) leaves nothing either.
	if _, err := Run(strings.NewReader(good), "run.trace", failWriter{}, Options{}); err == nil {
		t.Fatal("a failed write went unreported")
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Fatalf("the replay left %v in %s", left, dir)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

// TestAuditRunStream: a daemon whose filter routes to the fleet stream
// recorded its filter; the replay takes the stream= action without a
// stream, and writes the host log as the daemon did: the event the rule
// also routes to the host is there.
func TestAuditRunStream(t *testing.T) {
	filter := `"filter":"-a keep,host,container,stream=fleet -F key=exec\n"`
	trace := strings.Replace(primaryRun, `"timeout_ms":2000}`, `"timeout_ms":2000,`+filter+`}`, 1)
	trace = strings.Replace(trace, "SENT", `,"sent":[true,true]`, 1)
	if trace == strings.Replace(primaryRun, "SENT", `,"sent":[true,true]`, 1) {
		t.Fatal("the filter was not put in the trace")
	}
	out := replayed(t, trace, Options{})
	if !strings.Contains(out, `key="exec"`) || !strings.Contains(out, "contid=5") {
		t.Fatalf("the routed execve is not in the replay:\n%s", out)
	}
}
