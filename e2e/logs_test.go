package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/fdinfo"
	"github.com/contid/contid/internal/testing/testwait"
)

// The tests of this file run a paced exec loop in a container while the
// daemon, the kernel's audit daemon with an execve rule, reloads, has its
// log renamed away, or rotates by size; then they count the loop's execve
// events by serial in the host log and the container's log (current and
// rotated files): each exactly once, none missing.

// idle is how long the logs and the daemon's output may stand still before
// a wait gives up: a wait is on progress, not on a total deadline.
const idle = 60 * time.Second

// execLoop is a paced loop of execs of its own copy of true (tick) in a
// container, ended by stop, after which it execs final, a second copy: the
// marker that the log holds everything the loop did.
type execLoop struct {
	t                 *testing.T
	d                 *daemon
	contid            string
	tick, final, stop string
	count             string // the loop writes its number of ticks here
	cmd               *exec.Cmd
}

// startLoop starts the loop; args are given to every tick (long ones make
// big EXECVE records, to reach a size limit sooner).
func startLoop(t *testing.T, d *daemon, contid string, args int) *execLoop {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	l := &execLoop{t: t, d: d, contid: contid, tick: filepath.Join(dir, "contid-tick"), final: filepath.Join(dir, "contid-final"),
		stop: filepath.Join(dir, "stop"), count: filepath.Join(dir, "count")}
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l.tick, l.final} {
		if err := os.WriteFile(p, bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var argv strings.Builder
	for i := range args {
		fmt.Fprintf(&argv, " argument-%04d-%s", i, strings.Repeat("x", 16))
	}
	script := `n=0; while [ ! -e "$STOP" ]; do "$TICK"` + argv.String() + `; n=$((n+1)); sleep 0.01; done; echo $n > "$COUNT"; "$FINAL"`
	l.cmd = exec.Command(contidBin, "exec", "--contid", contid, "--", "sh", "-c", script)
	l.cmd.Env = append(os.Environ(), "CONTID_SOCKET="+d.socket, "STOP="+l.stop, "TICK="+l.tick, "FINAL="+l.final, "COUNT="+l.count)
	var errb bytes.Buffer
	l.cmd.Stderr = &errb
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l.cmd.ProcessState == nil {
			os.WriteFile(l.stop, nil, 0o600)
			l.cmd.Wait()
		}
	})
	return l
}

// ticks counts the loop's execve events in the host log files so far.
func (l *execLoop) ticks() int { return countIn(l.d.hostLogs(), `exe="`+l.tick+`"`) }

// waitTicks waits until the host log holds more than n ticks.
func (l *execLoop) waitTicks(n int) {
	l.t.Helper()
	waitProgress(l.t, l.d, "audit.log*", fmt.Sprintf("more than %d ticks in the host log", n), func() bool { return l.ticks() > n })
}

// end stops the loop and waits until the host log and the container's log
// hold its final exec; it returns the loop's number of ticks.
func (l *execLoop) end() int {
	l.t.Helper()
	if err := os.WriteFile(l.stop, nil, 0o600); err != nil {
		l.t.Fatal(err)
	}
	if err := l.cmd.Wait(); err != nil {
		l.t.Fatalf("exec loop: %v", err)
	}
	b, err := os.ReadFile(l.count)
	if err != nil {
		l.t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		l.t.Fatal(err)
	}
	final := `exe="` + l.final + `"`
	waitProgress(l.t, l.d, "audit.log*", "the loop's final exec in the host log", func() bool { return countIn(l.d.hostLogs(), final) > 0 })
	// Progress is the host log's: it takes every event the container's does.
	waitProgress(l.t, l.d, "audit.log*", "the loop's final exec in the container log", func() bool {
		return countIn(l.d.containerLogs(l.contid), final) > 0
	})
	// The loop was the container's last process: at its drop the daemon
	// moves the container's directory to dropped/ (or removes it). Checks
	// read the logs after that, not while it may happen under them.
	live := filepath.Join(l.d.logs(), "containers", l.contid)
	waitProgress(l.t, l.d, "audit.log*", "the container's directory moved away at its drop", func() bool {
		_, err := os.Stat(live)
		return os.IsNotExist(err)
	})
	return n
}

// check counts the loop's ticks by serial in files: n, each once. In the
// host log it also checks that no kernel serial is missing between the
// first tick and the last (every record reaches the log, not only the
// loop's): call it after the daemon's stop, which writes what it still
// holds (a kernel record that may stand alone, another process's BPF
// program load say, waits the reassembly timeout).
func (l *execLoop) check(name string, files []string, n int, contiguous bool) {
	t := l.t
	t.Helper()
	serials := map[uint64]int{} // of the loop's SYSCALL records
	kernel := map[uint64]bool{} // every kernel serial
	for _, f := range files {
		forRecords(t, f, func(r records.Record) {
			if r.Stamp.Serial < records.OwnSerialBase {
				kernel[r.Stamp.Serial] = true
			}
			if r.Type != records.Syscall {
				return
			}
			if exe, _ := r.Get("exe"); exe == l.tick {
				serials[r.Stamp.Serial]++
			}
		})
	}
	var dups []uint64
	for s, c := range serials {
		if c != 1 {
			dups = append(dups, s)
		}
	}
	if len(dups) > 0 || len(serials) != n {
		t.Fatalf("%s (%d files): %d distinct tick events, want %d; serials written more than once: %v", name, len(files), len(serials), n, dups)
	}
	if !contiguous {
		return
	}
	keys := slices.Sorted(func(yield func(uint64) bool) {
		for s := range serials {
			if !yield(s) {
				return
			}
		}
	})
	var missing []uint64
	for s := keys[0]; s <= keys[len(keys)-1]; s++ {
		if !kernel[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s: %d kernel serials between the first tick (%d) and the last (%d) are in no file: %v",
			name, len(missing), keys[0], keys[len(keys)-1], missing[:min(20, len(missing))])
	}
}

func forRecords(t *testing.T, path string, f func(records.Record)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		r, err := records.ParseLine(sc.Text())
		if err != nil {
			t.Fatalf("%s:%d does not parse: %v", path, n, err)
		}
		f(r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// hostLogs returns the host log files: audit.log and every file whose name
// starts with audit.log. (rotated or renamed away).
func (d *daemon) hostLogs() []string {
	files, _ := filepath.Glob(filepath.Join(d.logs(), "audit.log*"))
	return files
}

// containerLogs returns a container's log files, live or moved aside at
// its drop (containers/dropped/<contid>-<time>/).
func (d *daemon) containerLogs(id string) []string {
	files, _ := filepath.Glob(filepath.Join(d.logs(), "containers", id, "audit.log*"))
	dropped, _ := filepath.Glob(filepath.Join(d.logs(), "containers", "dropped", id+"-*", "audit.log*"))
	return append(files, dropped...)
}

func countIn(files []string, s string) int {
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		n += bytes.Count(b, []byte(s))
	}
	return n
}

// waitProgress waits until cond holds. It fails only when nothing moves
// for idle: the files named by files (a glob pattern under the daemon's
// log directory: the logs the condition is about; "daemon-*.log" is its
// output) stop growing.
func waitProgress(t *testing.T, d *daemon, files, what string, cond func() bool) {
	t.Helper()
	// The daemon's output is logged when the test fails (daemon.start).
	testwait.UntilIdle(t, what, idle, func() (bool, any) {
		if cond() {
			return true, nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err // for stop
			t.Fatalf("daemon exited (%v) while waiting for %s", err, what)
		default:
		}
		return false, d.fileBytes(files)
	})
}

// fileBytes is the number of bytes in the daemon's files that match the
// glob pattern files, relative to its log directory.
func (d *daemon) fileBytes(files string) int64 {
	var n int64
	dir := d.logs()
	if strings.HasPrefix(files, "daemon-") {
		dir = d.dir
	}
	names, _ := filepath.Glob(filepath.Join(dir, files))
	for _, name := range names {
		if fi, err := os.Stat(name); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// waitSaid waits until the daemon's output says s, counting from offset
// from (the output's length before the cause).
func waitSaid(t *testing.T, d *daemon, from int, s string) {
	t.Helper()
	waitProgress(t, d, "daemon-*.log", fmt.Sprintf("the daemon to say %q", s), func() bool { return strings.Contains(d.output()[from:], s) })
}

// fdFlags returns the open flags of the daemon's descriptor of path. A
// log being rotated has a moment with no descriptor of its name (renamed,
// the new file not yet open): it waits for one while the daemon's
// descriptors keep changing.
func (d *daemon) fdFlags(t *testing.T, path string) int {
	t.Helper()
	pid := strconv.Itoa(d.cmd.Process.Pid)
	var flags int
	awaitProgress(t, "a descriptor of "+path+" in the daemon", func() (string, bool) {
		f, targets, ok := fdinfo.Flags(t, pid, path)
		flags = f
		return strings.Join(targets, " "), ok
	})
	return flags
}

// startLogDaemon starts a primary-mode daemon with an execve rule, the
// JSON log and the configuration file text conf (which also has the kernel
// throttle producers rather than drop records: backlog_wait_time).
func startLogDaemon(t *testing.T, conf string) (*daemon, string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "contid.toml")
	writeConfig(t, cfg, conf)
	d := startAudit(t, "-a always,exit -F arch=b64 -S execve -F key=contid-logs\n", "--config", cfg, "--json-log")
	return d, cfg
}

func writeConfig(t *testing.T, path, conf string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("[audit]\nbacklog_wait_time = 15000\n"+conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadAudit: SIGHUP with kernel audit on, in the middle of a paced
// exec loop, applies the new [log] and [containers] limits and flush
// policies to the logs the daemon has open (their descriptors change flags;
// the host log starts rotating at its new size), and every record of the
// loop, before, during and after, is in the host log and the container's
// log exactly once.
func TestReloadAudit(t *testing.T) {
	d, cfg := startLogDaemon(t, "[log]\nmax_log_file = 0\nflush = \"incremental_async\"\n[containers]\nflush = \"incremental\"\n")
	host, json, clog := filepath.Join(d.dir, "audit.log"), filepath.Join(d.dir, "audit.json"), filepath.Join(d.dir, "containers", "4101", "audit.log")
	l := startLoop(t, d, "4101", 100)
	l.waitTicks(20)
	for _, p := range []string{host, json, clog} {
		if f := d.fdFlags(t, p); f&syscall.O_DSYNC != 0 {
			t.Fatalf("%s open with O_DSYNC before the reload (flags %o)", p, f)
		}
	}
	// Past 1 MiB, with no limit: no rotation.
	waitProgress(t, d, "audit.log*", "the host log past 1 MiB", func() bool { fi, err := os.Stat(host); return err == nil && fi.Size() > 1<<20 })
	if _, err := os.Stat(host + ".1"); err == nil {
		t.Fatal("rotated with max_log_file = 0")
	}

	writeConfig(t, cfg, "[log]\nmax_log_file = 1\nnum_logs = 9\nflush = \"data\"\n[containers]\nflush = \"sync\"\n")
	before, at := len(d.output()), l.ticks()
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitSaid(t, d, before, "reloaded configuration")
	if f := d.fdFlags(t, host); f&syscall.O_DSYNC == 0 {
		t.Errorf("flush = data: the host log is not open O_DSYNC after the reload (flags %o)", f)
	}
	if f := d.fdFlags(t, json); f&syscall.O_DSYNC == 0 {
		t.Errorf("flush = data: the JSON log is not open O_DSYNC after the reload (flags %o)", f)
	}
	if f := d.fdFlags(t, clog); f&syscall.O_SYNC != syscall.O_SYNC {
		t.Errorf("[containers] flush = sync: the container log is not open O_SYNC after the reload (flags %o)", f)
	}
	// The host log is over its new limit: the next lines rotate it.
	waitProgress(t, d, "audit.log*", "a rotation at the new max_log_file", func() bool { _, err := os.Stat(host + ".1"); return err == nil })
	l.waitTicks(at + 20)
	n := l.end()
	if fi, _ := os.Stat(host); fi.Size() > 1<<20 {
		t.Errorf("the host log is %d bytes after rotating at 1 MiB", fi.Size())
	}
	d.stop()
	l.check("host log", d.hostLogs(), n, true)
	l.check("container log", d.containerLogs("4101"), n, false)
	if strings.Contains(d.output(), "writer closed") {
		t.Errorf("a write to a closed log:\n%s", d.output())
	}
}

// TestReloadAuditRename: logrotate's way, with kernel audit on: the host,
// JSON and container logs are renamed in the middle of a paced exec loop,
// then SIGHUP; lines written between the two go to the renamed files, later
// ones to new files, and every record is in exactly one of them.
func TestReloadAuditRename(t *testing.T) {
	d, _ := startLogDaemon(t, "")
	host, clog := filepath.Join(d.dir, "audit.log"), filepath.Join(d.dir, "containers", "4102", "audit.log")
	l := startLoop(t, d, "4102", 0)
	l.waitTicks(20)
	for _, p := range []string{host, clog, filepath.Join(d.dir, "audit.json")} {
		if err := os.Rename(p, p+"-rotated"); err != nil {
			t.Fatal(err)
		}
	}
	// Not a sleep standing in for an event: the loop goes on while the
	// logs are renamed, so lines land in the renamed files.
	at := l.ticks()
	l.waitTicks(at + 5)
	before := len(d.output())
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitSaid(t, d, before, "reloaded configuration")
	waitProgress(t, d, "audit.log", "ticks in the new host log", func() bool { return countIn([]string{host}, `exe="`+l.tick+`"`) >= 20 })
	waitProgress(t, d, "containers/4102/audit.log", "ticks in the new container log", func() bool { return countIn([]string{clog}, `exe="`+l.tick+`"`) >= 20 })
	n := l.end()
	d.stop()
	l.check("host log", d.hostLogs(), n, true)
	l.check("container log", d.containerLogs("4102"), n, false)
	if countIn([]string{filepath.Join(d.dir, "audit.json")}, l.final) == 0 {
		t.Error("the new JSON log does not have the loop's end")
	}
}

// TestAuditOwnRotation: contid's own size-based rotation of the host and
// container logs, several times during a paced exec loop with kernel audit
// on, keeps every record exactly once.
func TestAuditOwnRotation(t *testing.T) {
	d, _ := startLogDaemon(t, "[log]\nmax_log_file = 1\nnum_logs = 20\n[containers]\nmax_log_file = 1\nnum_logs = 20\n")
	host := filepath.Join(d.dir, "audit.log")
	l := startLoop(t, d, "4103", 100)
	waitProgress(t, d, "audit.log*", "two rotations of the host and container logs", func() bool {
		_, e1 := os.Stat(host + ".2")
		_, e2 := os.Stat(filepath.Join(d.dir, "containers", "4103", "audit.log.2"))
		return e1 == nil && e2 == nil
	})
	n := l.end()
	d.stop()
	l.check("host log", d.hostLogs(), n, true)
	l.check("container log", d.containerLogs("4103"), n, false)
	for _, f := range d.hostLogs() {
		if fi, _ := os.Stat(f); fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over max_log_file", f, fi.Size())
		}
	}
}
