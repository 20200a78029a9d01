package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/testing/testwait"
)

// progressIdle is how long a wait in these tests may see no progress at all
// before it fails. It bounds a stall, never the work: a wait that keeps
// seeing progress waits as long as the work takes.
const progressIdle = 30 * time.Second

// awaitProgress polls probe until it reports done. probe also returns a
// summary of what it observed; the wait fails when that summary has not
// changed for progressIdle (nothing is moving any more), not after a total
// time.
func awaitProgress(t testing.TB, what string, probe func() (state string, done bool)) string {
	t.Helper()
	var state string
	testwait.UntilIdle(t, what, progressIdle, func() (bool, any) {
		s, done := probe()
		state = s
		return done, s
	})
	return state
}

// apiClients holds one client per socket: a client keeps its connection
// alive, and a new client per poll would fill the daemon's connection
// limit with idle connections.
var apiClients sync.Map

func apiClient(socket string) *api.Client {
	c, _ := apiClients.LoadOrStore(socket, api.NewClient(socket))
	return c.(*api.Client)
}

// apiStatus returns the daemon's status counters.
func apiStatus(t testing.TB, socket string) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progressIdle)
	defer cancel()
	st, err := apiClient(socket).Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// hostRecords returns the host log's records of type typ with all the
// given key=value fields, without failing on a missing log.
func (d *daemon) hostRecords(typ records.Type, kv ...string) []records.Record {
	d.t.Helper()
	if _, err := os.Stat(filepath.Join(d.dir, "audit.log")); err != nil {
		return nil
	}
	var out []records.Record
	for _, r := range d.logRecords() {
		if r.Type == typ && hasFields(r, kv) {
			out = append(out, r)
		}
	}
	return out
}

// awaitRecord waits, on progress of the host log, for a record of type
// typ with the given fields, and returns it.
func (d *daemon) awaitRecord(typ records.Type, kv ...string) records.Record {
	d.t.Helper()
	var r records.Record
	awaitProgress(d.t, fmt.Sprintf("a %s record with %v in the host log", typ, kv), func() (string, bool) {
		if rs := d.hostRecords(typ, kv...); len(rs) > 0 {
			r = rs[0]
			return "", true
		}
		fi, _ := os.Stat(filepath.Join(d.dir, "audit.log"))
		if fi == nil {
			return "no log", false
		}
		return strconv.FormatInt(fi.Size(), 10), false
	})
	return r
}

// auditdProc is Debian's auditd, run for one test as the kernel's audit
// daemon from a private configuration directory.
type auditdProc struct {
	cmd  *exec.Cmd
	log  string // auditd's own log
	dir  string
	done chan struct{}
}

// startAuditd starts auditd with its log in a temporary directory and,
// if pluginConf is not "", that plugins.d file. It takes no audit lock:
// the caller holds it. auditd enables audit while it runs.
func startAuditd(t *testing.T, pluginConf string) *auditdProc {
	t.Helper()
	return startAuditdConf(t, pluginConf, "")
}

// startAuditdConf is startAuditd with more auditd.conf lines (conf, which
// auditd.conf in a.dir ends with).
func startAuditdConf(t *testing.T, pluginConf, conf string) *auditdProc {
	t.Helper()
	if _, err := exec.LookPath("auditd"); err != nil {
		t.Fatalf("auditd is required (scripts/test installs it): %v", err)
	}
	dir := t.TempDir()
	a := &auditdProc{dir: dir, log: filepath.Join(dir, "auditd.log"), done: make(chan struct{})}
	os.Mkdir(filepath.Join(dir, "plugins.d"), 0o750)
	if pluginConf != "" {
		if err := os.WriteFile(filepath.Join(dir, "plugins.d", "contid.conf"), []byte(pluginConf), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	conf = "log_file = " + a.log + "\nlog_format = RAW\nwrite_logs = yes\nflush = INCREMENTAL_ASYNC\nfreq = 50\n" +
		"plugin_dir = " + filepath.Join(dir, "plugins.d") + "\nmax_log_file_action = ignore\nspace_left = 2\nadmin_space_left = 1\n" +
		"disk_full_action = ignore\ndisk_error_action = ignore\nspace_left_action = ignore\nadmin_space_left_action = ignore\n" + conf
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command("auditd", "-n", "-c", dir)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no registered auditd outlives the test binary
	out, err := os.Create(filepath.Join(dir, "auditd.out"))
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stdout, a.cmd.Stderr = out, out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGCONT) // if a test left it stopped
		a.cmd.Process.Signal(syscall.SIGTERM) // auditd ignores SIGINT
		select {
		case <-a.done:
		case <-time.After(progressIdle):
			a.cmd.Process.Kill()
			<-a.done
			t.Error("auditd did not stop after SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("auditd:\n%s", b)
		}
	})
	// Registered: the kernel names auditd's pid.
	awaitProgress(t, "auditd registered as the audit daemon", func() (string, bool) {
		select {
		case <-a.done:
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("auditd exited:\n%s", b)
		default:
		}
		o, _ := exec.Command("auditctl", "-s").Output()
		return string(o), strings.Contains(string(o), "pid "+strconv.Itoa(a.cmd.Process.Pid)+"\n")
	})
	return a
}

// stop sends auditd SIGTERM and waits until it has exited (and so let go
// of the registration); a test that checks what happens after auditd calls
// it before its own checks.
func (a *auditdProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	testwait.Receive(t, "auditd to exit after SIGTERM", a.done)
}

// runcBundleHooks replaces a bundle's hooks with the given "hooks" object.
func runcBundleHooks(t *testing.T, dir string, hooks any) {
	t.Helper()
	editJSON(t, filepath.Join(dir, "config.json"), func(cfg map[string]any) { cfg["hooks"] = hooks })
}

// runcCmd runs runc with args and returns its combined output and error; the
// container id is deleted when the test ends.
func runcCmd(t *testing.T, id string, args ...string) (string, error) {
	t.Helper()
	t.Cleanup(func() { exec.Command("runc", "delete", "-f", id).Run() })
	f, err := os.CreateTemp(t.TempDir(), "runc-*.out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A file, not a pipe: a detached container inherits it and this test
	// must not wait for its end.
	cmd := exec.Command("runc", args...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	b, _ := os.ReadFile(f.Name())
	return string(b), err
}

// runcPid returns the host pid of a running runc container's init.
func runcPid(t *testing.T, id string) int {
	t.Helper()
	out, err := exec.Command("runc", "state", id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", id, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state %s: %v: %s", id, err, out)
	}
	return st.Pid
}

// apiTask reads one task from the daemon.
func apiTask(t testing.TB, socket string, pid int) api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), progressIdle)
	defer cancel()
	x, err := apiClient(socket).Task(ctx, int32(pid))
	if err != nil {
		t.Fatalf("task %d: %v", pid, err)
	}
	return x
}
