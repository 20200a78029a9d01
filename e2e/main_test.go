// Package e2e tests the contid binary end to end, as root, on the real
// kernel: a daemon on its own pin directory, log directory and socket, and
// real callers through the CLI, including unprivileged ones. These tests
// fail, not skip, when a facility they need is missing: CI has them all.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/api"
	"github.com/contid/contid/internal/records"
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

// threadsRole runs 4 extra OS threads and waits until stdin closes or a
// signal ends it: a multi-threaded process inside a container.
func threadsRole() {
	for i := 0; i < 4; i++ {
		go func() {
			runtime.LockOSThread()
			select {}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Println("ready")
	time.Sleep(time.Hour) // until killed
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
	var err error
	if d.stderr, err = os.CreateTemp(d.dir, "daemon-*.log"); err != nil {
		t.Fatal(err)
	}
	args := []string{"daemon", "--log-dir", d.logs(), "--socket", d.socket, "--pin-dir", d.pinDir, "--log-level", "debug"}
	if d.config != "" {
		args = append(args, "--config", d.config)
	}
	if !slices.ContainsFunc(d.extra, func(a string) bool { return strings.HasPrefix(a, "--audit") }) {
		// Kernel audit is global: only the tests about it take it.
		args = append(args, "--audit", "off")
	}
	args = append(args, d.extra...)
	d.cmd = exec.Command(daemonBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	cl := api.NewClient(d.socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-d.exited:
			t.Fatalf("daemon exited: %v\n%s", err, d.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready: %v\n%s", err, d.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("daemon did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Error("daemon did not stop within 10 s of SIGTERM")
	}
	if d.t.Failed() {
		d.t.Logf("daemon output:\n%s", d.output())
	}
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
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// logRecords parses every line of the host log; a line that does not parse
// (torn or corrupt) fails the test.
func (d *daemon) logRecords() []records.Record {
	d.t.Helper()
	f, err := os.Open(filepath.Join(d.dir, "audit.log"))
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	var out []records.Record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		r, err := records.ParseLine(sc.Text())
		if err != nil {
			d.t.Fatalf("audit.log:%d does not parse: %v: %q", n, err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// waitRecord waits until the host log holds a record of type typ with all
// the given key=value fields, and returns it.
func (d *daemon) waitRecord(typ records.Type, kv ...string) records.Record {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range d.logRecords() {
			if r.Type == typ && hasFields(r, kv) {
				return r
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.dir, "audit.log"))
			d.t.Fatalf("no %s record with %v in the log:\n%s", typ, kv, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
