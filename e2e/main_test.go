// Package e2e tests the contid binary end to end, as root, on the real
// kernel: a daemon on its own pin directory, log directory and socket, and
// real callers through the CLI, including unprivileged ones. These tests
// fail, not skip, when a facility they need is missing: CI has them all.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/testing/testwait"
)

// contidBin is the contid binary, static so that it also runs inside a
// busybox container's rootfs. daemonBin is the one the tests run daemons
// from: contidBin, or when the tests run under the race detector (or
// CONTID_E2E_RACE=1), a build with -race, so that the daemon is checked
// too (it exits with status 66 after a race, which fails the test).
var contidBin, daemonBin string

func TestMain(m *testing.M) {
	if os.Getenv("CONTID_E2E_ROLE") == "threads" {
		threadsRole()
		return
	}
	dir, err := os.MkdirTemp("", "contid-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // unprivileged callers run it too
	contidBin = filepath.Join(dir, "contid")
	// Static, so it also runs inside a busybox container's rootfs.
	build := exec.Command("go", "build", "-o", contidBin, "../cmd/contid")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build contid:", err)
		os.Exit(1)
	}
	daemonBin = contidBin
	if raceBuild || os.Getenv("CONTID_E2E_RACE") == "1" {
		daemonBin = filepath.Join(dir, "contid-race")
		build := exec.Command("go", "build", "-race", "-o", daemonBin, "../cmd/contid")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build contid with -race:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// threadsRole holds 4 goroutines on OS threads of their own, prints
// "ready" once they are (and /proc lists at least 5 threads), and waits
// until a signal ends it: a multi-threaded process inside a container.
func threadsRole() {
	var locked sync.WaitGroup
	for range 4 {
		locked.Add(1)
		go func() {
			runtime.LockOSThread() // never unlocked: a thread of its own
			locked.Done()
			select {}
		}()
	}
	locked.Wait()
	// A locked thread runs nothing else, so the main goroutine is on a
	// fifth; /proc shows them all once they exist.
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil || len(ents) < 5 {
		fmt.Println("error: threads", len(ents), err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {} // until killed
}

// daemon is a contid daemon running for one test.
type daemon struct {
	t      testing.TB
	dir    string // log dir, socket, daemon output
	logDir string // log dir instead of dir, when set
	socket string
	pinDir string
	cmd    *exec.Cmd
	stderr *os.File
	exited chan error
	config string   // --config, when set
	extra  []string // more daemon flags
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("e2e tests need root (eBPF, bpffs, setpriv): run them as root, as CI does")
	}
}

// startDaemon starts a daemon; pinDir "" makes a fresh one.
func startDaemon(t testing.TB, pinDir string, extra ...string) *daemon {
	t.Helper()
	requireRoot(t)
	// The socket's directory must be reachable by unprivileged callers.
	dir, err := os.MkdirTemp("", "contid-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dir: dir, pinDir: pinDir, extra: extra}
	d.socket = filepath.Join(d.dir, "contid.sock")
	if d.pinDir == "" {
		d.pinDir = fmt.Sprintf("/sys/fs/bpf/contid-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(d.pinDir) })
	}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	t := d.t
	args := []string{"daemon", "--log-dir", d.logs(), "--socket", d.socket, "--pin-dir", d.pinDir, "--log-level", "debug"}
	if d.config != "" {
		args = append(args, "--config", d.config)
	}
	if !slices.ContainsFunc(d.extra, func(a string) bool { return strings.HasPrefix(a, "--audit") }) {
		// Kernel audit is global: only the tests about it take it.
		args = append(args, "--audit", "off")
	}
	args = append(args, d.extra...)
	cmd := exec.Command(daemonBin, args...)
	// Should this test binary die without its cleanups (a panic, the
	// -timeout), the daemon stops too and puts kernel audit back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	d.launch(cmd)
	cl := api.NewClient(d.socket)
	testwait.Until(t, "the daemon's API", func() (bool, any) {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Idle())
		_, err := cl.Status(ctx)
		cancel()
		if err == nil {
			return true, nil
		}
		select {
		case err := <-d.exited:
			t.Fatalf("daemon exited: %v\n%s", err, d.output())
		default:
		}
		// Starting, it logs what it loads.
		return false, fmt.Sprintf("output %d bytes, API: %v", len(d.output()), err)
	})
}

// progress is a mark of the daemon's work, for testwait.Until: the sizes of
// its host log and its own output, and the sum of its status counters
// (events it took in, records it wrote). It moves while the daemon works,
// also on the machine's other processes: a wait on it fails once the
// daemon has stood still for testwait.Idle.
func (d *daemon) progress() any {
	type mark struct {
		log, out int64
		counters uint64
	}
	var m mark
	if fi, err := os.Stat(filepath.Join(d.dir, "audit.log")); err == nil {
		m.log = fi.Size()
	}
	if d.stderr != nil {
		if fi, err := os.Stat(d.stderr.Name()); err == nil {
			m.out = fi.Size()
		}
	}
	if d.socket != "" {
		// A daemon that does not answer shows no counters: no progress.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if st, err := api.NewClient(d.socket).Status(ctx); err == nil {
			for _, v := range st.Counters {
				m.counters += v
			}
		}
	}
	return m
}

// logs is the daemon's log directory.
func (d *daemon) logs() string {
	if d.logDir != "" {
		return d.logDir
	}
	return d.dir
}

func (d *daemon) output() string {
	b, _ := os.ReadFile(d.stderr.Name())
	return string(b)
}

func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	// Stopping, it writes what it holds: its logs grow until it exits.
	var err error
	exited := false
	defer func() {
		if !exited { // the wait failed: do not leave it running
			d.cmd.Process.Kill()
			<-d.exited
		}
	}()
	testwait.Until(d.t, "the daemon's exit after SIGTERM", func() (bool, any) {
		select {
		case err = <-d.exited:
			exited = true
			return true, nil
		default:
		}
		return false, d.logSizes()
	})
	if err != nil {
		d.t.Errorf("daemon did not stop cleanly on SIGTERM: %v", err)
	}
	if d.t.Failed() {
		d.t.Logf("daemon output:\n%s", d.output())
	}
}

// logSizes is the sizes of the daemon's logs and output, a mark of
// progress that needs no API.
func (d *daemon) logSizes() any {
	var sizes [2]int64
	for i, name := range []string{filepath.Join(d.dir, "audit.log"), d.stderr.Name()} {
		if fi, err := os.Stat(name); err == nil {
			sizes[i] = fi.Size()
		}
	}
	return sizes
}

// kill stops the daemon with SIGKILL.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// sh runs a shell script with the daemon's socket, contid and the test
// binary in its environment; it returns stdout, stderr and the exit code.
func (d *daemon) sh(script string, env ...string) (string, string, int) {
	d.t.Helper()
	cmd := exec.Command("sh", "-c", script)
	self, _ := os.Executable()
	cmd.Env = append(os.Environ(), "CONTID_SOCKET="+d.socket, "C="+contidBin, "E2E="+self)
	cmd.Env = append(cmd.Env, env...)
	return runCmd(d.t, cmd)
}

// launch starts cmd as d's daemon: its output goes to a new file in d.dir,
// and d.exited receives what its Wait returns.
func (d *daemon) launch(cmd *exec.Cmd) {
	d.t.Helper()
	var err error
	if d.stderr, err = os.CreateTemp(d.dir, "daemon-*.log"); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = cmd
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- cmd.Wait() }()
}

// runCmd runs cmd and returns its stdout, stderr and exit code; a command that
// could not run fails t.
func runCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// logRecords parses every whole line of the host log; a line that does
// not parse (torn or corrupt) fails the test. A last line without its
// '\n' is a write still in progress (a reader can see part of a write(2)
// to a regular file) and is left for the next look.
func (d *daemon) logRecords() []records.Record {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "audit.log"))
	if err != nil {
		d.t.Fatal(err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []records.Record
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		r, err := records.ParseLine(string(line))
		if err != nil {
			d.t.Fatalf("audit.log:%d does not parse: %v: %q", n, err, line)
		}
		out = append(out, r)
	}
	return out
}

// waitRecord waits until the host log holds a record of type typ with all
// the given key=value fields, and returns it. It fails when the daemon
// made no progress (d.progress) for testwait.Idle.
func (d *daemon) waitRecord(typ records.Type, kv ...string) records.Record {
	d.t.Helper()
	var found *records.Record
	defer func() {
		if found == nil { // failed: show what the log holds
			b, _ := os.ReadFile(filepath.Join(d.dir, "audit.log"))
			d.t.Logf("no %s record with %v in the log:\n%s", typ, kv, b)
		}
	}()
	testwait.Until(d.t, fmt.Sprintf("a %s record with %v", typ, kv), func() (bool, any) {
		for _, r := range d.logRecords() {
			if r.Type == typ && hasFields(r, kv) {
				found = &r
				return true, nil
			}
		}
		return false, d.progress()
	})
	return *found
}

func hasFields(r records.Record, kv []string) bool {
	for _, f := range kv {
		k, v, _ := strings.Cut(f, "=")
		if got, ok := r.Get(k); !ok || got != v {
			return false
		}
	}
	return true
}

// tasks decodes a stream of `contid get --json` outputs.
func tasks(t *testing.T, out string) []api.Task {
	t.Helper()
	var ts []api.Task
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var x api.Task
		if err := dec.Decode(&x); err != nil {
			t.Fatalf("bad get output: %v\n%.2000s", err, out)
		}
		ts = append(ts, x)
	}
	return ts
}
