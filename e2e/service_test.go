package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/surface/api"
	"github.com/contid/contid/internal/surface/metrics"
)

// scrape reads /metrics over http, from a TCP address or a unix socket
// path, into series → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	cl := http.DefaultClient
	if path := addr; strings.HasPrefix(path, "/") {
		cl = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
		addr = "contid"
	}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func (d *daemon) status() api.Status {
	d.t.Helper()
	out, errOut, code := d.sh(`"$C" status --json`)
	var s api.Status
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil {
		d.t.Fatalf("status: exit %d %v: %s %s", code, err, out, errOut)
	}
	return s
}

// untilMoved polls value until done says so; it fails only when value has
// not changed for a whole idle period (the daemon stopped making progress),
// whatever the machine's speed.
func untilMoved(t *testing.T, what string, value func() float64, done func(float64) bool) {
	t.Helper()
	const idle = 20 * time.Second
	last, since := value(), time.Now()
	for !done(last) {
		if time.Since(since) > idle {
			t.Fatalf("%s stopped at %v", what, last)
		}
		time.Sleep(20 * time.Millisecond)
		if v := value(); v != last {
			last, since = v, time.Now()
		}
	}
}

var metricsAddr = regexp.MustCompile(`msg=metrics listen=(\S+)`)

// TestMetricsAgreeWithStatus: with kernel audit on, /metrics moves with
// the activity of a container and agrees with `contid status --json`:
// every status counter is exported under its own name, with a value
// between the status read just before the scrape and the one just after.
func TestMetricsAgreeWithStatus(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S execve -F key=contid-metrics\n", "--metrics-listen", "127.0.0.1:0")
	m := metricsAddr.FindStringSubmatch(d.output())
	if m == nil {
		t.Fatalf("daemon did not log its metrics address:\n%s", d.output())
	}
	addr := m[1]
	before := scrape(t, addr)
	const n = 50
	if _, errOut, code := d.sh(fmt.Sprintf(`"$C" exec --contid 91 -- sh -c 'for i in $(seq %d); do /bin/true; done'`, n)); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	d.waitRecord(records.ContainerOp, "op=drop", "contid=91")
	contained := `contid_audit_events_contained_total`
	untilMoved(t, contained, func() float64 { return scrape(t, addr)[contained] },
		func(v float64) bool { return v >= before[contained]+n })

	sA := d.status()
	got := scrape(t, addr)
	sB := d.status()
	for k, b := range sB.Counters {
		if !metrics.Described(k) {
			t.Errorf("status counter %q has no metric name of its own (add it to the table in internal/surface/metrics)", k)
		}
		name := metrics.Series(k)
		v, ok := got[name]
		if !ok {
			t.Errorf("status counter %s: no series %s", k, name)
			continue
		}
		if a := sA.Counters[k]; v < float64(a) || v > float64(b) {
			t.Errorf("%s = %v, status says %d before and %d after", name, v, a, b)
		}
	}
	for series, want := range map[string]float64{
		`contid_info{audit="primary",source="ebpf"}`:   1,
		`contid_queue_capacity{queue="audit_batches"}`: 64,
		`contid_queue_capacity{queue="own_records"}`:   4096,
		`contid_queue_capacity{queue="task_events"}`:   64,
		`contid_lost_total{kind="kernel"}`:             0,
		`contid_lost_total{kind="gap"}`:                0,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	// The container's execs moved the counters.
	for _, series := range []string{
		`contid_audit_events_written_total{dest="container"}`,
		`contid_audit_events_written_total{dest="host"}`,
		`contid_audit_records_received_total`,
		`contid_engine_inputs_total`,
	} {
		if got[series] < before[series]+n {
			t.Errorf("%s went from %v to %v over %d execs", series, before[series], got[series], n)
		}
	}
	if got["process_resident_memory_bytes"] <= 0 || got["go_goroutines"] <= 0 {
		t.Error("no process or Go runtime metrics")
	}
}

// notifySocket is a fake service manager's NOTIFY_SOCKET.
type notifySocket struct {
	t    *testing.T
	fd   int
	path string
}

func newNotifySocket(t *testing.T) *notifySocket {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// Credentials on each message, as systemd checks NotifyAccess=main.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{t: t, fd: fd, path: filepath.Join(t.TempDir(), "notify.sock")}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: n.path}); err != nil {
		t.Fatal(err)
	}
	return n
}

// next returns the next notification and its sender's pid. It waits
// while the daemon runs; a daemon that exits first fails the test.
func (n *notifySocket) next(d *daemon) (string, int32) {
	n.t.Helper()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	if exited, err := n.readable(d); exited {
		n.t.Fatalf("daemon exited (%v) before notifying:\n%s", err, d.output())
	}
	k, oobn, _, _, err := unix.Recvmsg(n.fd, buf, oob, 0)
	if err != nil {
		n.t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		n.t.Fatalf("no credentials: %v", err)
	}
	cred, err := unix.ParseUnixCredentials(&msgs[0])
	if err != nil {
		n.t.Fatal(err)
	}
	return string(buf[:k]), cred.Pid
}

// readable waits until a notification can be read, or the daemon has
// exited (then true and its exit error, put back for others to see).
func (n *notifySocket) readable(d *daemon) (bool, error) {
	for {
		pfd := []unix.PollFd{{Fd: int32(n.fd), Events: unix.POLLIN}}
		k, err := unix.Poll(pfd, 100)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			n.t.Fatal(err)
		}
		if k > 0 {
			return false, nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return true, err
		default:
		}
	}
}

func monotonicUsec() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano()) / 1000
}

// TestServiceNotify: the daemon speaks systemd's notify protocol to
// NOTIFY_SOCKET: READY=1 once the API (and the metrics socket) answer,
// RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP reload,
// STOPPING=1 at SIGTERM; every message from the daemon's own pid.
func TestServiceNotify(t *testing.T) {
	requireRoot(t)
	ns := newNotifySocket(t)
	dir, err := os.MkdirTemp("", "contid-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{t: t, dir: dir, socket: filepath.Join(dir, "contid.sock"),
		pinDir: fmt.Sprintf("/sys/fs/bpf/contid-e2e-notify-%d", os.Getpid())}
	t.Cleanup(func() { os.RemoveAll(d.pinDir) })
	cfg := filepath.Join(dir, "contid.toml")
	os.WriteFile(cfg, []byte("[log]\nflush = \"incremental\"\n"), 0o600)
	msock := filepath.Join(dir, "metrics.sock")
	cmd := exec.Command(contidBin, "daemon", "--config", cfg, "--log-dir", dir, "--socket", d.socket, "--pin-dir", d.pinDir,
		"--audit", "off", "--log-level", "debug", "--metrics-listen", msock)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path)
	d.launch(cmd)
	t.Cleanup(d.stop)
	pid := int32(d.cmd.Process.Pid)

	// The first message is READY=1, and by then both sockets answer.
	msg, from := ns.next(d)
	if !strings.HasPrefix(msg, "READY=1\n") || from != pid {
		t.Fatalf("first notification %q from pid %d, want READY=1 from %d", msg, from, pid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := api.NewClient(d.socket).Status(ctx); err != nil {
		t.Fatalf("READY=1 sent before the API answers: %v", err)
	}
	if got := scrape(t, msock); got[`contid_info{audit="off",source="ebpf"}`] != 1 {
		t.Fatalf("metrics after READY=1: %v", got)
	}

	// SIGHUP: RELOADING=1 stamped between the signal and its READY=1.
	t0 := monotonicUsec()
	d.cmd.Process.Signal(syscall.SIGHUP)
	msg, from = ns.next(d)
	var usec uint64
	if _, err := fmt.Sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%d", &usec); err != nil || from != pid {
		t.Fatalf("after SIGHUP: %q from %d (%v), want RELOADING=1 with MONOTONIC_USEC", msg, from, err)
	}
	if msg, _ = ns.next(d); msg != "READY=1" {
		t.Fatalf("after RELOADING=1: %q, want READY=1", msg)
	}
	if t1 := monotonicUsec(); usec < t0 || usec > t1 {
		t.Errorf("MONOTONIC_USEC %d outside the reload [%d, %d]", usec, t0, t1)
	}
	if !strings.Contains(d.output(), "reloaded configuration") {
		t.Errorf("READY=1 before the reload was done:\n%s", d.output())
	}

	// SIGTERM: STOPPING=1, a clean exit, the metrics socket removed.
	d.cmd.Process.Signal(syscall.SIGTERM)
	if msg, from = ns.next(d); msg != "STOPPING=1" || from != pid {
		t.Fatalf("after SIGTERM: %q from %d, want STOPPING=1", msg, from)
	}
	if err := <-d.exited; err != nil {
		t.Fatalf("exit: %v\n%s", err, d.output())
	}
	if _, err := os.Stat(msock); !os.IsNotExist(err) {
		t.Errorf("metrics socket left behind: %v", err)
	}
}

// unitCaps reads CapabilityBoundingSet from the shipped unit file.
func unitCaps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../contrib/systemd/contid.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("contid.service has no CapabilityBoundingSet")
	return nil
}

// TestServiceUnit checks the unit's settings against the daemon's
// defaults and needs.
func TestServiceUnit(t *testing.T) {
	b, err := os.ReadFile("../contrib/systemd/contid.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			unit[k] = append(unit[k], v)
		}
	}
	for k, want := range map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"Restart":                 "on-failure",
		"KillMode":                "mixed",
		"RuntimeDirectory":        "contid", // socket = "/run/contid/contid.sock"
		"LogsDirectory":           "contid", // log_dir = "/var/log/contid"
		"LimitMEMLOCK":            "infinity",
		"ProtectSystem":           "strict",
		"ReadWritePaths":          "/sys/fs/bpf",
		"NoNewPrivileges":         "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"RestrictAddressFamilies": "AF_UNIX AF_NETLINK",
	} {
		if got := unit[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if _, ok := unit["PrivateTmp"]; ok {
		t.Error("PrivateTmp would make audit watches under /tmp resolve to the service's own /tmp")
	}
	if got := unit["ProtectHome"]; len(got) != 1 || got[0] != "read-only" {
		t.Errorf("ProtectHome=%q: only read-only keeps audit watches under /home on the real inodes", got)
	}
	out, _, code := (&daemon{t: t}).sh(`"$C" daemon --print-config`)
	if code != 0 || !strings.Contains(out, `socket = "/run/contid/contid.sock"`) || !strings.Contains(out, `log_dir = "/var/log/contid"`) {
		t.Errorf("the unit's RuntimeDirectory and LogsDirectory no longer match the defaults:\n%s", out)
	}
}

// capScenario is one thing the daemon must do; it passes (nil) or says
// what failed.
type capScenario struct {
	name  string
	args  []string
	check func(t *testing.T, d *daemon) error
}

// TestServiceCapabilities: the daemon does its job with exactly the
// unit's CapabilityBoundingSet (and NoNewPrivileges), and each capability
// in it is needed: without it, some scenario fails.
func TestServiceCapabilities(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t) // primary and listener mode send records
	audittest.Restore(t)
	rules := filepath.Join(t.TempDir(), "audit.rules")
	os.WriteFile(rules, []byte("-a always,exit -F arch=b64 -S execve -F key=contid-caps\n"), 0o600)
	sourceIs := func(want string) func(*testing.T, *daemon) error {
		return func(t *testing.T, d *daemon) error {
			out, errOut, code := d.sh(`"$C" status --json`)
			if code != 0 || !strings.Contains(out, `"source": "`+want+`"`) {
				return fmt.Errorf("status: %s %s", out, errOut)
			}
			return nil
		}
	}
	scenarios := map[string]capScenario{
		"ebpf": {"eBPF tracker", []string{"--source", "ebpf", "--audit", "off"}, sourceIs("ebpf")},
		"callers": {"callers of another uid", []string{"--source", "ebpf", "--audit", "off"}, func(t *testing.T, d *daemon) error {
			if out, errOut, code := d.sh(`setpriv --reuid 65534 --regid 65534 --clear-groups "$C" status`); code != 0 {
				return fmt.Errorf("status as uid 65534: %s %s", out, errOut)
			}
			out, errOut, code := d.sh(`setpriv --reuid 65534 --regid 65534 --clear-groups sleep 60 & P=$!; "$C" set $P 6 >/dev/null; R=$?; echo $P; kill $P; exit $R`)
			if code != 0 {
				return fmt.Errorf("registering a task of uid 65534: %s %s", out, errOut)
			}
			r := d.waitRecord(records.NSInfo, "opid="+strings.TrimSpace(out))
			if net, _ := r.Get("net"); net == "" {
				return fmt.Errorf("NS_INFO without the target's namespaces: %v", r)
			}
			return nil
		}},
		"connector": {"process-events connector", []string{"--source", "proc-connector", "--audit", "off"}, sourceIs("proc-connector")},
		"primary": {"kernel audit daemon", []string{"--source", "ebpf", "--audit", "primary", "--audit-rules", rules}, func(t *testing.T, d *daemon) error {
			if _, errOut, code := d.sh(`"$C" exec --contid 8 -- true`); code != 0 {
				return fmt.Errorf("exec: %s", errOut)
			}
			var st api.Status
			sent := func() float64 {
				out, _, _ := d.sh(`"$C" status --json`)
				json.Unmarshal([]byte(out), &st)
				return float64(st.Counters["own_sent"] + st.Counters["own_send_errors"])
			}
			// CONTAINER_OP set and NS_INFO: two own records.
			untilMoved(t, "own records sent", sent, func(v float64) bool { return v >= 2 })
			if n := st.Counters["own_send_errors"]; n > 0 {
				return fmt.Errorf("%d own records refused by the kernel", n)
			}
			return nil
		}},
		"listener": {"audit listener", []string{"--source", "ebpf", "--audit", "listener"}, func(t *testing.T, d *daemon) error {
			out, errOut, code := d.sh(`"$C" status --json`)
			if code != 0 || !strings.Contains(out, `"audit": "listener"`) {
				return fmt.Errorf("status: %s %s", out, errOut)
			}
			return nil
		}},
	}
	needs := map[string]string{
		"CAP_BPF": "ebpf", "CAP_PERFMON": "ebpf",
		"CAP_SYS_PTRACE": "callers", "CAP_KILL": "callers", "CAP_DAC_READ_SEARCH": "callers",
		"CAP_NET_ADMIN":     "connector",
		"CAP_AUDIT_CONTROL": "primary", "CAP_AUDIT_WRITE": "primary",
		"CAP_AUDIT_READ": "listener",
	}
	caps := unitCaps(t)
	for _, c := range caps {
		if _, ok := needs[c]; !ok {
			t.Errorf("the unit grants %s, which no scenario needs", c)
		}
	}
	for c := range needs {
		if !slices.Contains(caps, c) {
			t.Errorf("the unit lacks %s", c)
		}
	}
	for _, key := range []string{"ebpf", "callers", "connector", "primary", "listener"} {
		sc := scenarios[key]
		if err := runCapped(t, caps, sc); err != nil {
			t.Errorf("%s with the unit's capabilities: %v", sc.name, err)
		}
		for c, k := range needs {
			if k != key {
				continue
			}
			less := slices.DeleteFunc(slices.Clone(caps), func(s string) bool { return s == c })
			if err := runCapped(t, less, sc); err == nil {
				t.Errorf("%s works without %s: the unit need not grant it", sc.name, c)
			} else {
				t.Logf("without %s, %s fails: %v", c, sc.name, err)
			}
		}
	}
}

// runCapped runs the daemon with the bounding set caps and no new
// privileges, as the unit does, waits for READY=1 (or its exit), runs the
// scenario's check and stops the daemon.
func runCapped(t *testing.T, caps []string, sc capScenario) error {
	t.Helper()
	ns := newNotifySocket(t)
	dir, err := os.MkdirTemp("", "contid-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	defer os.RemoveAll(dir)
	d := &daemon{t: t, dir: dir, socket: filepath.Join(dir, "contid.sock"),
		pinDir: fmt.Sprintf("/sys/fs/bpf/contid-e2e-caps-%d", os.Getpid())}
	defer os.RemoveAll(d.pinDir)
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	args := append([]string{"--bounding-set", set, "--inh-caps", "-all", "--no-new-privs", contidBin, "daemon",
		"--log-dir", dir, "--socket", d.socket, "--pin-dir", d.pinDir}, sc.args...)
	cmd := exec.Command("setpriv", args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path)
	d.launch(cmd)
	if msg, ok := ns.ready(d); !ok {
		return fmt.Errorf("daemon did not start (%s): %s", msg, lastLine(d.output()))
	}
	err = sc.check(t, d)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if xerr := <-d.exited; xerr != nil && err == nil {
		err = fmt.Errorf("stop: %v: %s", xerr, lastLine(d.output()))
	}
	return err
}

// ready waits for READY=1; false when the daemon exits first.
func (n *notifySocket) ready(d *daemon) (string, bool) {
	buf := make([]byte, 4096)
	for {
		if exited, err := n.readable(d); exited {
			return fmt.Sprint(err), false
		}
		k, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			n.t.Fatal(err)
		}
		if strings.HasPrefix(string(buf[:k]), "READY=1") {
			return "", true
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
