package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
)

// nlSocket is a netlink socket's queued bytes and drop counter.
type nlSocket struct{ rmem, drops uint64 }

// auditGroupSockets returns pid's NETLINK_AUDIT sockets that are in a
// multicast group (/proc/net/netlink), by inode.
func auditGroupSockets(t *testing.T, pid int) map[string]nlSocket {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(s, "]")] = true
		}
	}
	f, err := os.Open("/proc/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]nlSocket{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		x := strings.Fields(sc.Text())
		if len(x) < 10 || x[1] != "9" || x[3] == "00000000" || !inodes[x[9]] {
			continue
		}
		rmem, err1 := strconv.ParseUint(x[4], 10, 64)
		drops, err2 := strconv.ParseUint(x[8], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("/proc/net/netlink: %q: %v %v", sc.Text(), err1, err2)
		}
		out[x[9]] = nlSocket{rmem, drops}
	}
	if len(out) == 0 {
		t.Fatalf("pid %d has no NETLINK_AUDIT socket in a multicast group", pid)
	}
	return out
}

// ownLoss returns the host log's CONTID_LOSS records that daemon pid
// wrote: stamped from its own serial space, or sent by it through the
// kernel (whose pid= names the sender). Other contid daemons on the
// machine send theirs into the kernel's stream too, and a listener
// receives them.
func ownLoss(d *daemon, pid int) []records.Record {
	var out []records.Record
	for _, r := range d.hostRecords(records.ContidLoss) {
		if p, _ := r.Get("pid"); r.Stamp.Serial >= records.OwnSerialBase || p == strconv.Itoa(pid) {
			out = append(out, r)
		}
	}
	return out
}

// lossSums sums the count= of daemon d's CONTID_LOSS records by kind,
// failing on one whose source is not want.
func lossSums(t *testing.T, d *daemon, source string) map[string]uint64 {
	t.Helper()
	sums := map[string]uint64{}
	for _, r := range ownLoss(d, d.cmd.Process.Pid) {
		kind, _ := r.Get("kind")
		c, _ := r.Get("count")
		n, err := strconv.ParseUint(c, 10, 64)
		if src, _ := r.Get("source"); err != nil || src != source {
			t.Fatalf("CONTID_LOSS record with count %q, source %q (want %s): %s", c, src, source, r.Raw)
		}
		sums[kind] += n
	}
	return sums
}

// TestListenerGaps: contid in listener mode beside auditd (the registered
// audit daemon). Unloaded, it receives every event of the stream, with
// its container, and reports no loss. Stalled (SIGSTOP) while execs flood
// the stream until the kernel drops multicast copies for its socket (the
// socket's drop counter moves), it reports the loss once running again:
// `contid status` counts the socket overflows (audit_enobufs) and the
// serials never received (audit_gaps), and CONTID_LOSS records of kinds
// enobufs and gap, source=listener, add up to those counters.
func TestListenerGaps(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	startAuditd(t, "")
	audittest.Auditctl(t, "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-F", "key=contid-listen")
	cfg := filepath.Join(t.TempDir(), "contid.toml")
	// A short reassembly window, so that the quiet phase's proof below
	// (event time past every serial's window) needs few marker events.
	os.WriteFile(cfg, []byte("[audit]\ntimeout_ms = 300\n"), 0o644)
	d := startDaemon(t, "", "--audit", "listener", "--config", cfg)

	// Quiet: 50 execs in container 41, each attributed; no loss.
	if _, errOut, code := d.sh(`"$C" exec --contid 41 -- sh -c 'for i in $(seq 50); do /bin/true; done'`); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	host := filepath.Join(d.dir, "audit.log")
	var last records.Stamp
	awaitProgress(t, "50 execve events of container 41 in the host log", func() (string, bool) {
		n := 0
		for _, e := range execs(readEvents(t, host), "/usr/bin/true") {
			if i, _ := e.first(records.Syscall); e.described(i) == "41" {
				n++
				last = e[0].Stamp
			}
		}
		return strconv.Itoa(n), n == 50
	})
	// Event time past the last of them by more than the window: any
	// serial still missing by then has been counted as a gap.
	awaitProgress(t, "an event stamped a window after the quiet phase", func() (string, bool) {
		exec.Command("/bin/true").Run()
		var newest records.Stamp
		for _, e := range readEvents(t, host) {
			if s := e[0].Stamp; s.Serial < records.OwnSerialBase && (s.Sec > newest.Sec || s.Sec == newest.Sec && s.Msec > newest.Msec) {
				newest = s
			}
		}
		ms := func(s records.Stamp) int64 { return int64(s.Sec)*1000 + int64(s.Msec) }
		return fmt.Sprint(newest), ms(newest) > ms(last)+300+1000
	})
	// Every kernel serial from the first the log holds to the quiet
	// phase's last is there (later ones may still be on their way): the
	// counters below have nothing to hide.
	var serials []uint64
	for _, e := range readEvents(t, host) {
		if s := e[0].Stamp.Serial; s <= last.Serial {
			serials = append(serials, s)
		}
	}
	slices.Sort(serials)
	serials = slices.Compact(serials)
	if len(serials) == 0 || serials[len(serials)-1]-serials[0]+1 != uint64(len(serials)) {
		t.Fatalf("quiet phase: %d distinct kernel serials from %d to %d: some were not received", len(serials), serials[0], serials[len(serials)-1])
	}
	st := apiStatus(t, d.socket)
	if st.Audit != "listener" {
		t.Fatalf("status: audit %q, want listener", st.Audit)
	}
	for _, c := range []string{"audit_gaps", "audit_enobufs", "kernel_lost", "loss_records", "audit_incomplete", "audit_late"} {
		if n := st.Counters[c]; n != 0 {
			t.Errorf("quiet phase: %s = %d, want 0", c, n)
		}
	}
	if rs := ownLoss(d, d.cmd.Process.Pid); len(rs) != 0 {
		t.Errorf("quiet phase: %d CONTID_LOSS records, first: %s", len(rs), rs[0].Raw)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Loaded: the reader stalls while the stream floods its socket.
	pid := d.cmd.Process.Pid
	before := auditGroupSockets(t, pid)
	d.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			d.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	var loads []*exec.Cmd
	for i := 0; i < 2; i++ {
		l := exec.Command("sh", "-c", "while :; do /bin/true; done")
		l.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		loads = append(loads, l)
	}
	stopLoad := func() {
		for _, l := range loads {
			syscall.Kill(-l.Process.Pid, syscall.SIGKILL)
			l.Wait()
		}
		loads = nil
	}
	defer stopLoad()
	awaitProgress(t, "the kernel dropping multicast copies for every listening socket of the stalled daemon", func() (string, bool) {
		// Progress: the sockets fill (rmem), then drop.
		now := auditGroupSockets(t, pid)
		done := true
		for ino, s := range now {
			done = done && s.drops > before[ino].drops
		}
		return fmt.Sprint(now), done
	})
	stopLoad()
	d.cmd.Process.Signal(syscall.SIGCONT)
	stopped = false

	// Each kind of CONTID_LOSS adds up to its counter. The machine's other
	// work may go on losing records, so the records are compared with a
	// snapshot of the counters: they catch up with it, and never report
	// more than the counters hold (records are read before counters).
	kinds := map[string]string{"gap": "audit_gaps", "enobufs": "audit_enobufs", "incomplete": "audit_incomplete",
		"late": "audit_late", "discontinuity": "audit_discontinuities", "malformed": "audit_malformed", "kernel": "kernel_lost"}
	var snap map[string]uint64
	awaitProgress(t, "the stall's loss counted", func() (string, bool) {
		// A record after the dropped ones shows their gap: on a quiet
		// machine nothing else would send one.
		exec.Command("/bin/true").Run()
		snap = apiStatus(t, d.socket).Counters
		// Progress is the loss counters alone: the execs above keep
		// audit_received moving whatever happens.
		return fmt.Sprint(snap["audit_gaps"], snap["audit_enobufs"]), snap["audit_gaps"] > 0 && snap["audit_enobufs"] > 0
	})
	var sums map[string]uint64
	state := awaitProgress(t, "CONTID_LOSS records adding up to the loss counters", func() (string, bool) {
		sums = lossSums(t, d, "listener")
		now := apiStatus(t, d.socket).Counters
		done := true
		for kind, c := range kinds {
			if sums[kind] > now[c] {
				t.Fatalf("CONTID_LOSS records report %d of kind %s, the counter %s only %d", sums[kind], kind, c, now[c])
			}
			done = done && sums[kind] >= snap[c]
		}
		for kind := range sums {
			if kinds[kind] == "" {
				t.Fatalf("CONTID_LOSS of unknown kind %q", kind)
			}
		}
		return fmt.Sprint(sums), done
	})
	t.Logf("after the stall: counted %v; records %s", snap, state)
	for _, k := range []string{"discontinuity", "malformed", "kernel"} {
		if sums[k] != 0 {
			t.Errorf("CONTID_LOSS of kind %s (%d) after a multicast overflow", k, sums[k])
		}
	}
}
