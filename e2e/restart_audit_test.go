package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/testing/testwait"
)

// Kernel audit state that survives a daemon: these tests check what the
// kernel holds with auditctl (not with contid's own netlink code), against
// a snapshot the test takes itself before the first start.

// kernelSnap is what contid must put back: settings and the exact rules.
type kernelSnap struct {
	enabled, backlog, wait int
	rules                  []string // `auditctl -l`, in order
}

func snapKernel(t *testing.T) kernelSnap {
	t.Helper()
	st := audittest.Status(t)
	return kernelSnap{st.Enabled, st.BacklogLimit, st.BacklogWaitTime, auditctlRules(t)}
}

func auditctlRules(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(string(audittest.Auditctl(t, "-l")), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "No rules" {
			out = append(out, l)
		}
	}
	return out
}

func (s kernelSnap) String() string {
	return fmt.Sprintf("enabled=%d backlog_limit=%d backlog_wait_time=%d rules=%q", s.enabled, s.backlog, s.wait, s.rules)
}

func (s kernelSnap) equal(o kernelSnap) bool {
	return s.enabled == o.enabled && s.backlog == o.backlog && s.wait == o.wait && slices.Equal(s.rules, o.rules)
}

// countRule is how often the kernel lists a rule that contains all of sub.
func countRule(rules []string, sub ...string) int {
	n := 0
	for _, r := range rules {
		ok := true
		for _, s := range sub {
			ok = ok && strings.Contains(r, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// markLoop runs /bin/true contid-mark-N for N = 1, 2, … at a steady pace
// until stopped; n is the last N started.
type markLoop struct {
	n    atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startMarkLoop(t *testing.T) *markLoop {
	l := &markLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			n := l.n.Load() + 1
			if err := exec.Command("/bin/true", "contid-mark-"+strconv.FormatInt(n, 10)).Run(); err != nil {
				t.Errorf("exec loop: %v", err)
				return
			}
			l.n.Store(n)
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
	}()
	t.Cleanup(l.end)
	return l
}

func (l *markLoop) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// marks reads the host log: the EXECVE records of the exec loop by mark,
// the number of SYSCALL records per serial, and the CONTID_LOSS records of
// kind kernel.
type hostLog struct {
	marks    map[int64][]uint64 // mark → serials of its EXECVE records
	syscalls map[uint64]int     // serial → SYSCALL records
	loss     []records.Record
	lines    map[string]int // identical lines
	max      int64
}

func readHostLog(t *testing.T, d *daemon) hostLog {
	t.Helper()
	h := hostLog{marks: map[int64][]uint64{}, syscalls: map[uint64]int{}, lines: map[string]int{}}
	b, err := os.ReadFile(filepath.Join(d.dir, "audit.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		h.lines[sc.Text()]++
		r, err := records.ParseLine(sc.Text())
		if err != nil {
			t.Fatalf("audit.log:%d does not parse: %v: %q", n, err, sc.Text())
		}
		switch r.Type {
		case 1300: // SYSCALL
			h.syscalls[r.Stamp.Serial]++
		case 1309: // EXECVE
			a1, _ := r.Get("a1")
			m, ok := strings.CutPrefix(strings.Trim(a1, `"`), "contid-mark-")
			if !ok {
				continue
			}
			i, err := strconv.ParseInt(m, 10, 64)
			if err != nil {
				t.Fatalf("audit.log:%d: mark %q", n, a1)
			}
			h.marks[i] = append(h.marks[i], r.Stamp.Serial)
			h.max = max(h.max, i)
		case records.ContidLoss:
			if k, _ := r.Get("kind"); k == "kernel" {
				h.loss = append(h.loss, r)
			}
		}
	}
	return h
}

// lossCount sums the counts of the CONTID_LOSS kind=kernel records.
func (h hostLog) lossCount(t *testing.T) int {
	n := 0
	for _, r := range h.loss {
		c, _ := r.Get("count")
		v, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("CONTID_LOSS count %q", c)
		}
		n += v
	}
	return n
}

// onceEach fails unless every mark in [from, to] is in the log exactly
// once, and no record is in it twice.
func (h hostLog) onceEach(t *testing.T, from, to int64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if n := len(h.marks[i]); n != 1 {
			t.Errorf("mark %d is in the host log %d times (serials %v), want once", i, n, h.marks[i])
		}
	}
	for s, n := range h.syscalls {
		if n != 1 {
			t.Errorf("serial %d: %d SYSCALL records", s, n)
		}
	}
	for l, n := range h.lines {
		if n != 1 {
			t.Errorf("line written %d times: %s", n, l)
		}
	}
}

const restartRules = `# contid e2e: exec loop, an administrator's twin, a watch
-a always,exit -F arch=b64 -S execve -F key=contid-e2e-exec
-a always,exit -F arch=b64 -S kill -F key=contid-e2e-admin
-w /etc/hostname -p wa -k contid-e2e-watch
`

// TestAuditRestartAfterKill: a primary daemon with audit rules is killed
// (SIGKILL) while a paced exec loop runs, then started again with the
// same rules. It starts; the kernel holds each rule once; every record
// before the kill and after the restart is in the host log exactly once;
// the kernel's loss while no daemon ran is reported as CONTID_LOSS
// kind=kernel with the kernel's count; after a clean stop the kernel's
// settings and exact rule set are those before the first start, with the
// administrator's rule that equals one of contid's still there.
func TestAuditRestartAfterKill(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	t.Cleanup(func() { audittest.Auditctl(t, "-r", "0") })
	// An administrator's rules, loaded before contid: one equal to a rule
	// of contid's file, one of its own.
	audittest.Auditctl(t, "-a", "always,exit", "-F", "arch=b64", "-S", "kill", "-F", "key=contid-e2e-admin")
	audittest.Auditctl(t, "-w", "/etc/hosts", "-p", "wa", "-k", "contid-e2e-admin-only")
	before := snapKernel(t)
	lost0 := audittest.Status(t).Lost
	t.Logf("before the first start: %v lost=%d", before, lost0)

	f := filepath.Join(t.TempDir(), "audit.rules")
	if err := os.WriteFile(f, []byte(restartRules), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "", "--audit", "primary", "--audit-rules", f)
	checkRulesOnce := func(when string) {
		t.Helper()
		rules := auditctlRules(t)
		for _, sub := range [][]string{{"execve", "contid-e2e-exec"}, {"kill", "contid-e2e-admin"}, {"/etc/hostname", "contid-e2e-watch"}, {"/etc/hosts ", "contid-e2e-admin-only"}} {
			if n := countRule(rules, sub...); n != 1 {
				t.Errorf("%s: the kernel lists the rule with %q %d times, want once:\n%s", when, sub, n, strings.Join(rules, "\n"))
			}
		}
	}
	checkRulesOnce("first start")

	loop := startMarkLoop(t)
	idle := 30 * time.Second
	testwait.UntilIdle(t, "exec loop records before the kill", idle, func() (bool, any) {
		h := readHostLog(t, d)
		return h.max >= 50, int(h.max)
	})
	d.kill()
	atKill := readHostLog(t, d)
	st := audittest.Status(t)
	if st.Enabled != 1 || countRule(auditctlRules(t), "contid-e2e-exec") != 1 {
		t.Fatalf("after SIGKILL the kernel should still hold contid's state: %+v %q", st, auditctlRules(t))
	}
	// While no daemon runs, make the kernel lose records it counts (a rate
	// limit), so that the loss report is checked with a count that is not 0.
	lostKill := st.Lost
	audittest.Auditctl(t, "-r", "1")
	execs := loop.n.Load()
	testwait.UntilIdle(t, "kernel loss while no daemon runs", idle, func() (bool, any) {
		l := audittest.Status(t).Lost
		if n := loop.n.Load(); l < lostKill+5 && n > execs+2000 {
			t.Fatalf("2000 execs under a rate limit of 1 record/s and the kernel's lost moved from %d to %d only", lostKill, l)
		}
		return l >= lostKill+5, int(loop.n.Load())
	})
	audittest.Auditctl(t, "-r", "0")
	lostDown := audittest.Status(t).Lost

	d.start() // fails the test if the daemon does not start
	// The exec after the last one finished may have started before the
	// new daemon registered.
	ready := loop.n.Load() + 1
	checkRulesOnce("restart after SIGKILL")
	testwait.UntilIdle(t, "exec loop records after the restart", idle, func() (bool, any) {
		h := readHostLog(t, d)
		return h.max >= ready+50, int(h.max)
	})
	loop.end()
	last := loop.n.Load()
	testwait.UntilIdle(t, "the last mark and the loss report", idle, func() (bool, any) {
		h := readHostLog(t, d)
		return h.max >= last && h.lossCount(t) >= lostDown-lost0, int(h.max)
	})
	lostEnd := audittest.Status(t).Lost
	h := readHostLog(t, d)
	h.onceEach(t, 1, atKill.max)
	h.onceEach(t, ready+1, last)
	lost := h.lossCount(t)
	if lost != lostEnd-lost0 || lostEnd-lost0 < lostDown-lostKill {
		t.Errorf("CONTID_LOSS kind=kernel counts sum to %d; the kernel lost %d since the first start (%d while no daemon ran)",
			lost, lostEnd-lost0, lostDown-lostKill)
	}
	t.Logf("marks: %d before the kill, %d..%d after the restart; kernel loss reported: %d (%d while down)", atKill.max, ready+1, last, lost, lostDown-lostKill)

	d.stop()
	if after := snapKernel(t); !after.equal(before) {
		t.Errorf("after a clean stop:\n  %v\nbefore the first start:\n  %v", after, before)
	}
	if countRule(auditctlRules(t), "kill", "contid-e2e-admin") != 1 {
		t.Errorf("the administrator's rule equal to one of contid's is gone")
	}
	if st := audittest.Status(t); st.PID != 0 {
		t.Errorf("pid %d still registered", st.PID)
	}
}

// TestAuditRulesKilledMidway: a daemon killed at points of its start
// (state recorded, some rules added) and of its stop (some rules deleted)
// leaves a state the next start adopts: it starts, the kernel holds each
// rule once, and a clean stop puts back the state before the first start.
func TestAuditRulesKilledMidway(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	audittest.Auditctl(t, "-a", "always,exit", "-F", "arch=b64", "-S", "kill", "-F", "key=contid-e2e-admin")
	before := snapKernel(t)
	f := filepath.Join(t.TempDir(), "audit.rules")
	if err := os.WriteFile(f, []byte(restartRules), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, point := range []string{"adopted", "added:1", "added:2", "deleted:1", "deleted:2"} {
		t.Run(point, func(t *testing.T) {
			d := &daemon{t: t, extra: []string{"--audit", "primary", "--audit-rules", f}}
			var err error
			if d.dir, err = os.MkdirTemp("", "contid-e2e-"); err != nil {
				t.Fatal(err)
			}
			os.Chmod(d.dir, 0o755)
			t.Cleanup(func() { os.RemoveAll(d.dir) })
			d.socket = filepath.Join(d.dir, "contid.sock")
			d.pinDir = fmt.Sprintf("/sys/fs/bpf/contid-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
			t.Cleanup(func() { os.RemoveAll(d.pinDir) })
			t.Cleanup(d.stop)

			os.Setenv("CONTID_TEST_CRASH", point)
			if strings.HasPrefix(point, "deleted:") {
				d.start()
				os.Unsetenv("CONTID_TEST_CRASH")
				d.cmd.Process.Signal(syscall.SIGTERM)
			} else {
				d.startExpectKill()
				os.Unsetenv("CONTID_TEST_CRASH")
			}
			if err := <-d.exited; !killed(err) {
				t.Fatalf("daemon with CONTID_TEST_CRASH=%s: %v, want killed by SIGKILL\n%s", point, err, d.output())
			}
			if st := audittest.Status(t); point != "adopted" && st.Enabled != 1 {
				t.Errorf("killed at %s: audit enabled=%d, want the killed daemon's 1", point, st.Enabled)
			}
			d.start()
			rules := auditctlRules(t)
			for _, key := range []string{"contid-e2e-exec", "contid-e2e-admin", "contid-e2e-watch"} {
				if n := countRule(rules, key); n != 1 {
					t.Errorf("after the restart the kernel lists %s %d times:\n%s", key, n, strings.Join(rules, "\n"))
				}
			}
			d.stop()
			if after := snapKernel(t); !after.equal(before) {
				t.Errorf("after a clean stop:\n  %v\nbefore the first start:\n  %v\n%s", after, before, d.output())
			}
		})
	}
}

// startExpectKill starts the daemon as start does, without waiting for it
// to be ready: it is to die on the way.
func (d *daemon) startExpectKill() {
	d.t.Helper()
	args := append([]string{"daemon", "--log-dir", d.dir, "--socket", d.socket, "--pin-dir", d.pinDir, "--log-level", "debug"}, d.extra...)
	d.launch(exec.Command(contidBin, args...))
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestAuditAutoWithAuditd: with Debian's auditd registered as the audit
// daemon, `audit.mode = auto` warns, runs without kernel records (its own
// records stamped by itself), loads no rules and leaves auditd and the
// kernel's audit state alone.
func TestAuditAutoWithAuditd(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	before := snapKernel(t)
	auditd := startAuditd(t, "")

	f := filepath.Join(t.TempDir(), "audit.rules")
	if err := os.WriteFile(f, []byte(restartRules), 0o600); err != nil {
		t.Fatal(err)
	}
	withAuditd := snapKernel(t)
	d := startDaemon(t, "", "--audit", "auto", "--audit-rules", f)
	if !strings.Contains(d.output(), "another audit daemon is registered") {
		t.Errorf("no warning about auditd in the daemon's log:\n%s", d.output())
	}
	st, _, _ := d.sh(`"$C" status --json`)
	if !strings.Contains(st, `"audit": "off"`) {
		t.Errorf("status with auditd registered:\n%s", st)
	}
	if got := snapKernel(t); !got.equal(withAuditd) || countRule(got.rules, "contid-e2e") != 0 {
		t.Errorf("contid changed the kernel's audit state beside auditd: %v, was %v", got, withAuditd)
	}
	if pid := audittest.Status(t).PID; pid != auditd.cmd.Process.Pid {
		t.Errorf("registered audit daemon %d, want auditd %d", pid, auditd.cmd.Process.Pid)
	}
	// Its own records still go to its host log, stamped by itself.
	if _, errOut, code := d.sh(`"$C" exec --contid 77 -- true`); code != 0 {
		t.Fatalf("contid exec: %s", errOut)
	}
	r := d.waitRecord(records.ContainerOp, "op=set", "contid=77")
	if r.Stamp.Serial < records.OwnSerialBase {
		t.Errorf("CONTAINER_OP serial %d: not from contid's own serial space", r.Stamp.Serial)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "audit-state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("audit state file beside auditd: %v", err)
	}
	d.stop()
	if pid := audittest.Status(t).PID; pid != auditd.cmd.Process.Pid {
		t.Errorf("after contid's stop: registered audit daemon %d, want auditd %d", pid, auditd.cmd.Process.Pid)
	}
	auditd.stop(t)
	t.Logf("before auditd: %v; after auditd's stop: %v (audittest.Restore puts it back)", before, snapKernel(t))
}

// TestAuditRulesRefused: a rules file with a line that would change global
// audit state or drop contid's own records keeps the daemon from starting,
// names the line, and changes nothing in the kernel.
func TestAuditRulesRefused(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	before := snapKernel(t)
	for _, c := range []struct{ line, why string }{
		{"-w /etc/passwd -p wa -e 0", "audit.rules:2: -e is refused"},
		{"-a always,exit -F arch=b64 -S kill -k x -e 2", "audit.rules:2: -e is refused"},
		{"-A always,exclude -F msgtype=2900", "audit.rules:2: an exclude rule that could drop contid's own records (type 2900"},
		{"-a never,user -F uid=0", "audit.rules:2: a never rule of the user list"},
		{"-D", "audit.rules:2: -D is refused"},
	} {
		f := filepath.Join(t.TempDir(), "audit.rules")
		if err := os.WriteFile(f, []byte("-a always,exit -F arch=b64 -S execve -k contid-e2e-ok\n"+c.line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d := &daemon{t: t, extra: []string{"--audit", "primary", "--audit-rules", f}}
		d.dir = t.TempDir()
		d.socket = filepath.Join(d.dir, "contid.sock")
		d.pinDir = fmt.Sprintf("/sys/fs/bpf/contid-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(d.pinDir) })
		d.startExpectKill()
		err := <-d.exited
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
			t.Errorf("%q: daemon: %v, want a failed start", c.line, err)
		}
		if out := d.output(); !strings.Contains(out, c.why) {
			t.Errorf("%q: the daemon's error does not say %q:\n%s", c.line, c.why, out)
		}
		if after := snapKernel(t); !after.equal(before) {
			t.Errorf("%q: the kernel changed: %v, was %v", c.line, after, before)
		}
	}
}
