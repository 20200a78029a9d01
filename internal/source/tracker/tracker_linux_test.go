package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
	"github.com/contid/contid/internal/source/taskevent/sourcetest"
	"github.com/contid/contid/internal/testing/testwait"
)

func TestAvailable(t *testing.T) {
	requireRoot(t)
	if err := Available(); err != nil {
		t.Fatalf("Available: %v", err)
	}
}

// TestLayout checks decode.go's offsets against the structs in the BPF
// object's BTF, as bpf2go generated them.
func TestLayout(t *testing.T) {
	var h trackerEventHdr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"hdr", unsafe.Sizeof(h), hdrSize},
		{"fork", unsafe.Sizeof(trackerForkEvent{}), forkSize},
		{"exec", unsafe.Sizeof(trackerExecEvent{}), execSize},
		{"exit", unsafe.Sizeof(trackerExitEvent{}), exitSize},
		{"ns", unsafe.Sizeof(trackerNsEvent{}), nsEventSize},
		{"join", unsafe.Sizeof(trackerJoinEvent{}), joinSize},
		{"cg_key", unsafe.Sizeof(trackerCgKey{}), 16},
		{"task_val", unsafe.Sizeof(trackerTaskVal{}), 16},
		{"kind", unsafe.Offsetof(h.Kind), offKind},
		{"version", unsafe.Offsetof(h.Version), offVersion},
		{"size", unsafe.Offsetof(h.Size), offSize},
		{"flags", unsafe.Offsetof(h.Flags), offFlags},
		{"time", unsafe.Offsetof(h.Time), offTime},
		{"start_time", unsafe.Offsetof(h.StartTime), offStartTime},
		{"start_boottime", unsafe.Offsetof(h.StartBoottime), offStartBoottime},
		{"contid", unsafe.Offsetof(h.Contid), offContid},
		{"tid", unsafe.Offsetof(h.Tid), offTID},
		{"tgid", unsafe.Offsetof(h.Tgid), offTGID},
		{"uid", unsafe.Offsetof(h.Uid), offUID},
		{"auid", unsafe.Offsetof(h.Auid), offAUID},
		{"ses", unsafe.Offsetof(h.Ses), offSes},
		{"comm", unsafe.Offsetof(h.Comm), offComm},
		{"fork.parent_tid", unsafe.Offsetof(trackerForkEvent{}.ParentTid), hdrSize},
		{"fork.clone_flags", unsafe.Offsetof(trackerForkEvent{}.CloneFlags), hdrSize + 8},
		{"fork.ns", unsafe.Offsetof(trackerForkEvent{}.Ns), hdrSize + 16},
		{"exec.old_tid", unsafe.Offsetof(trackerExecEvent{}.OldTid), hdrSize},
		{"exec.ns", unsafe.Offsetof(trackerExecEvent{}.Ns), hdrSize + 8},
		{"exit.exit_code", unsafe.Offsetof(trackerExitEvent{}.ExitCode), hdrSize},
		{"exit.ns", unsafe.Offsetof(trackerExitEvent{}.Ns), hdrSize + 8},
		{"ns.op", unsafe.Offsetof(trackerNsEvent{}.Op), hdrSize},
		{"join.cg_contid", unsafe.Offsetof(trackerJoinEvent{}.CgContid), hdrSize},
		{"join.cgroup_id", unsafe.Offsetof(trackerJoinEvent{}.CgroupId), hdrSize + 8},
		{"join.mover_tid", unsafe.Offsetof(trackerJoinEvent{}.MoverTid), hdrSize + 16},
		{"join.mover_tgid", unsafe.Offsetof(trackerJoinEvent{}.MoverTgid), hdrSize + 20},
		{"join.hierarchy", unsafe.Offsetof(trackerJoinEvent{}.Hierarchy), hdrSize + 24},
		{"join.tagged", unsafe.Offsetof(trackerJoinEvent{}.Tagged), hdrSize + 28},
		{"ns.ns", unsafe.Offsetof(trackerNsEvent{}.Ns), hdrSize + 8},
		{"ns_rec", unsafe.Sizeof(trackerNsRec{}), nsRecSize},
		{"ns_rec.inum", unsafe.Offsetof(trackerNsRec{}.Inum), 8},
		{"ns records", unsafe.Sizeof(trackerNsEvent{}.Ns), nsAllSize},
	} {
		if c.got != c.want {
			t.Errorf("%s: BPF object says %d, decode.go %d", c.name, c.got, c.want)
		}
	}
}

func TestTagAndRead(t *testing.T) {
	tr, _ := openTest(t, Config{})
	tagged := start(t, exec.Command("sleep", helperLife))
	other := start(t, exec.Command("sleep", helperLife))

	const id contid.ID = 42
	if err := tr.SetContid(tagged.pid(), id); err != nil {
		t.Fatal(err)
	}
	wantContid(t, tr, tagged.pid(), id)
	wantUntagged(t, tr, other.pid())

	// A zero contid is valid; the unset value is refused.
	if err := tr.SetContid(tagged.pid(), 0); err != nil {
		t.Fatal(err)
	}
	wantContid(t, tr, tagged.pid(), 0)
	if err := tr.SetContid(tagged.pid(), contid.Unset); !errors.Is(err, unix.EINVAL) {
		t.Errorf("SetContid(Unset) = %v, want EINVAL", err)
	}

	// Through a pidfd the caller holds.
	fd, err := unix.PidfdOpen(other.pid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := tr.SetContidFD(fd, 7); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := tr.ContidFD(fd); err != nil || !ok || got != 7 {
		t.Errorf("ContidFD = %v, %v, %v; want 7", got, ok, err)
	}

	// A gone task is ESRCH, through a tid and through a stale pidfd.
	_ = other.cmd.Process.Kill()
	_ = other.cmd.Wait()
	if _, _, err := tr.Contid(other.pid()); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Contid(dead) = %v, want ESRCH", err)
	}
	if err := tr.SetContidFD(fd, 8); !errors.Is(err, unix.ESRCH) {
		t.Errorf("SetContidFD(dead) = %v, want ESRCH", err)
	}
}

// TestInherit: children, grandchildren and threads of a tagged process
// inherit its contid at creation; an untagged process's children get no
// task storage.
func TestInherit(t *testing.T) {
	tr, _ := openTest(t, Config{})
	c := collect(t, tr)
	const id contid.ID = 1001

	helper := fmt.Sprintf("%s=threads %q -test.run=^$", helperEnv, os.Args[0])
	h := startHeld(t, "sleep "+helperLife+" & (sleep "+helperLife+" & wait) & "+helper+" & wait")
	control := startHeld(t, "sleep "+helperLife+" & (sleep "+helperLife+" & wait) & wait")
	if err := tr.SetGroup(h.pid(), 0, id); err != nil {
		t.Fatal(err)
	}
	h.release(t)
	control.release(t)
	if got := h.line(t); got != "ready" {
		t.Fatalf("helper says %q", got)
	}

	// sh, sleep, subshell, its sleep, the helper.
	procs := waitDescendants(t, h.pid(), 4)
	wantContid(t, tr, h.pid(), id)
	threadsSeen := 0
	for _, p := range procs {
		wantContid(t, tr, p, id)
		threadsSeen += len(threads(t, p))
	}
	if threadsSeen < len(procs)+4 {
		t.Errorf("saw %d threads in %d processes, the helper alone should have 5+", threadsSeen, len(procs))
	}

	for _, p := range append(waitDescendants(t, control.pid(), 3), control.pid()) {
		wantUntagged(t, tr, p)
	}

	// Fork events of the tagged tree carry the contid, those of the control
	// tree none; new threads are reported as threads.
	inTree := func(tgid int32, root int) bool {
		if int(tgid) == root {
			return true
		}
		for _, p := range descendants(t, root) {
			if int(tgid) == p {
				return true
			}
		}
		return false
	}
	evs := c.waitCount(t, "helper thread forks and the control tree's forks", 4+2, func(evs []taskevent.Event) int {
		threads, controls := 0, 0
		for _, e := range evs {
			switch {
			case e.Kind != taskevent.KindFork:
			case e.Thread && e.Comm != "" && inTree(e.TGID, h.pid()):
				threads++
			case inTree(e.ParentTGID, control.pid()):
				controls++
			}
		}
		return min(threads, 4) + min(controls, 2)
	})
	var tagged, untagged int
	for _, e := range evs {
		if e.Kind != taskevent.KindFork {
			continue
		}
		switch {
		case inTree(e.ParentTGID, h.pid()):
			tagged++
			if !e.HasContid || e.Contid != id {
				t.Errorf("fork event of tagged tree without contid: %+v", e)
			}
		case inTree(e.ParentTGID, control.pid()):
			untagged++
			if e.HasContid {
				t.Errorf("fork event of control tree with contid: %+v", e)
			}
		}
	}
	if tagged < 4 || untagged < 2 {
		t.Errorf("saw %d fork events of the tagged tree and %d of the control tree", tagged, untagged)
	}
}

// TestSetGroup tags a running multi-threaded process that was started
// untagged, then checks that threads and children it creates afterwards
// inherit.
func TestSetGroup(t *testing.T) {
	tr, _ := openTest(t, Config{})
	h := startThreads(t)
	wantUntagged(t, tr, h.pid())
	const id contid.ID = 77

	// Any thread names its group.
	tids := threads(t, h.pid())
	var nonLeader int
	for _, tid := range tids {
		if tid != h.pid() {
			nonLeader = tid
		}
	}
	if err := tr.SetGroup(nonLeader, 0, id); err != nil {
		t.Fatal(err)
	}
	wantContid(t, tr, h.pid(), id)

	if _, err := fmt.Fprintln(h.stdin, "more"); err != nil {
		t.Fatal(err)
	}
	line := h.line(t)
	var child, forker int
	if _, err := fmt.Sscanf(line, "more %d %d", &child, &forker); err != nil {
		t.Fatalf("helper says %q", line)
	}
	before := map[int]bool{}
	for _, tid := range tids {
		before[tid] = true
	}
	fresh := 0
	for _, tid := range threads(t, h.pid()) {
		if !before[tid] {
			fresh++
		}
	}
	if fresh == 0 {
		t.Error("the helper created no thread after SetGroup")
	}
	wantContid(t, tr, h.pid(), id)
	wantContid(t, tr, child, id)

	// io_uring workers are made by create_io_thread, which bypasses
	// kernel_clone and so sched_process_fork; task_newtask sees them.
	if _, err := fmt.Fprintln(h.stdin, "uring"); err != nil {
		t.Fatal(err)
	}
	line = h.line(t)
	worker, err := strconv.Atoi(strings.TrimPrefix(line, "uring "))
	if err != nil {
		t.Fatalf("helper says %q", line)
	}
	if got, ok, err := tr.Contid(worker); err != nil || !ok || got != id {
		t.Errorf("io_uring worker %d (%s): contid %v, %v, %v; want %v", worker, comm(worker), got, ok, err, id)
	}

	if err := tr.SetGroup(1<<22+1, 0, id); !errors.Is(err, unix.ESRCH) {
		t.Errorf("SetGroup(no such pid) = %v, want ESRCH", err)
	}
}

// TestGroupFallback: while SetGroup runs, a thread not yet tagged may
// create tasks; the kernel then takes the value of the group leader, which
// SetGroup tags first with the group flag. Here only that first step is
// done, so everything the helper creates must inherit through it.
func TestGroupFallback(t *testing.T) {
	tr, _ := openTest(t, Config{})
	h := startThreads(t)
	const id contid.ID = 78
	leader, err := unix.PidfdOpen(h.pid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leader)
	if err := tr.store(leader, id, valSet|valGroup); err != nil {
		t.Fatal(err)
	}
	// Listed after the flag: the Go runtime may start threads of its own at
	// any time, so only a thread missing from this list is surely newer
	// than the flag and must have inherited.
	before := map[int]bool{}
	for _, tid := range threads(t, h.pid()) {
		before[tid] = true
	}

	if _, err := fmt.Fprintln(h.stdin, "more"); err != nil {
		t.Fatal(err)
	}
	var child, forker int
	if line := h.line(t); !scan(line, "more %d %d", &child, &forker) {
		t.Fatalf("helper says %q", line)
	}
	if !before[forker] {
		t.Fatalf("forking thread %d is new; want an old, untagged one", forker)
	}
	if _, ok, err := ownContid(tr, forker); err != nil || ok {
		t.Fatalf("forking thread %d: a value of its own %v, %v; want none", forker, ok, err)
	}
	// It reads its leader's, as the kernel side does.
	if got, ok, err := tr.Contid(forker); err != nil || !ok || got != id {
		t.Fatalf("forking thread %d: contid %v, %v, %v; want the leader's %v", forker, got, ok, err, id)
	}
	wantContid(t, tr, child, id)
	fresh := 0
	for _, tid := range threads(t, h.pid()) {
		if before[tid] {
			continue
		}
		fresh++
		if got, ok, err := tr.Contid(tid); err != nil || !ok || got != id {
			t.Errorf("new thread %d: contid %v, %v, %v; want %v", tid, got, ok, err, id)
		}
		// Where threads share their leader's value, a new thread gets no
		// storage: that is the point of sharing.
		if _, own, err := ownContid(tr, tid); err != nil || own != !tr.threadsShare {
			t.Errorf("new thread %d: a value of its own %v, %v; threads share %v", tid, own, err, tr.threadsShare)
		}
	}
	if fresh == 0 {
		t.Error("the helper created no thread")
	}
}

func scan(s, format string, args ...any) bool {
	_, err := fmt.Sscanf(s, format, args...)
	return err == nil
}

// TestBurst: 2,000 short-lived children of a tagged shell. Every fork,
// exec and exit event of them must carry the contid — the exit event reads
// the task's storage as the task dies, so this checks what the kernel map
// held over each child's whole life — and nothing may be lost.
func TestBurst(t *testing.T) {
	tr, _ := openTest(t, Config{})
	c := collect(t, tr)
	const id contid.ID = 2000
	const n = 2000
	h := startTagged(t, tr, id, fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true & i=$((i+1)); done; wait", n))
	tagged := monotonic(t)
	shell := int32(h.pid())
	h.release(t)
	if err := h.cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	type life struct{ fork, exec, exit bool }
	var kids map[int32]*life
	c.waitCount(t, "all children's forks and exits", 2*n, func(evs []taskevent.Event) int {
		kids = map[int32]*life{}
		for _, e := range evs {
			if e.Kind == taskevent.KindFork && e.ParentTGID == shell && !e.Thread {
				kids[e.TID] = &life{fork: true}
			}
		}
		exits := 0
		for _, e := range evs {
			if k := kids[e.TID]; k != nil && e.Kind == taskevent.KindExit {
				exits++
			}
		}
		return min(len(kids), n) + min(exits, n)
	})
	evs := c.events()
	for _, e := range evs {
		k := kids[e.TID]
		if k == nil {
			if e.TGID == shell && e.Time > tagged && (!e.HasContid || e.Contid != id) {
				t.Errorf("shell event without contid: %+v", e)
			}
			continue
		}
		switch e.Kind {
		case taskevent.KindExec:
			k.exec = true
		case taskevent.KindExit:
			k.exit = true
		}
		if !e.HasContid || e.Contid != id {
			t.Errorf("%s event of child %d: contid %v (set %v), want %v", e.Kind, e.TID, e.Contid, e.HasContid, id)
		}
	}
	if len(kids) != n {
		t.Errorf("saw %d fork events, want %d", len(kids), n)
	}
	for tid, k := range kids {
		if !k.fork || !k.exec || !k.exit {
			t.Errorf("child %d: fork %v exec %v exit %v", tid, k.fork, k.exec, k.exit)
		}
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost != 0 || st.InheritFailures != 0 {
		t.Errorf("stats %+v, want no loss", st)
	}
}

// TestExecKeeps: exec keeps the contid, and the exec event carries it.
func TestExecKeeps(t *testing.T) {
	tr, _ := openTest(t, Config{})
	c := collect(t, tr)
	const id contid.ID = 5
	h := startTagged(t, tr, id, "exec sleep "+helperLife)
	h.release(t)
	evs := c.wait(t, "exec event", func(evs []taskevent.Event) bool {
		for _, e := range evs {
			if e.Kind == taskevent.KindExec && int(e.TID) == h.pid() && e.Comm == "sleep" {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Kind == taskevent.KindExec && int(e.TID) == h.pid() && e.Comm == "sleep" {
			if !e.HasContid || e.Contid != id || e.OldTID != e.TID {
				t.Errorf("exec event %+v", e)
			}
		}
	}
	wantContid(t, tr, h.pid(), id)
}

// nsOf returns the ns.ID of /proc/PID/ns/TYPE, with the unique id from
// ioctl NS_GET_ID.
func nsOf(t testing.TB, pid int, typ string) ns.ID {
	t.Helper()
	return nsAt(t, fmt.Sprintf("/proc/%d/ns/%s", pid, typ))
}

func nsAt(t testing.TB, path string) ns.ID {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	const nsGetID = 0x8008b70d // _IOR(0xb7, 0xd, __u64), Linux 6.18
	var uniq uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nsGetID, uintptr(unsafe.Pointer(&uniq))); errno != 0 {
		t.Logf("NS_GET_ID on %s: %v", path, errno)
		uniq = 0
	}
	return ns.ID{Dev: uint32(st.Dev), Ino: uint32(st.Ino), Unique: uniq}
}

// TestNSSyscalls: with NSSyscalls, `unshare -n` and `nsenter -n` give NS
// events whose net namespace is the one /proc shows afterwards; fork
// events carry the child's full set.
func TestNSSyscalls(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare(1) is missing")
	}
	tr, _ := openTest(t, Config{NSSyscalls: true})
	c := collect(t, tr)
	const id contid.ID = 9

	un := startTagged(t, tr, id, "exec unshare -n sleep "+helperLife)
	un.release(t)
	find := func(pid int, op taskevent.NSOp) func([]taskevent.Event) bool {
		return func(evs []taskevent.Event) bool {
			for _, e := range evs {
				if e.Kind == taskevent.KindNS && int(e.TGID) == pid && e.Op == op {
					return true
				}
			}
			return false
		}
	}
	c.wait(t, "unshare event", find(un.pid(), taskevent.NSUnshare))
	// Wait until it runs sleep so that /proc shows the final namespaces.
	c.wait(t, "exec of sleep", func(evs []taskevent.Event) bool {
		for _, e := range evs {
			if e.Kind == taskevent.KindExec && int(e.TID) == un.pid() && e.Comm == "sleep" {
				return true
			}
		}
		return false
	})

	en := startTagged(t, tr, id, fmt.Sprintf("exec nsenter -t %d -n sleep %s", un.pid(), helperLife))
	en.release(t)
	c.wait(t, "setns event", find(en.pid(), taskevent.NSSetns))

	self := nsOf(t, os.Getpid(), "net")
	want := nsOf(t, un.pid(), "net")
	if want == self {
		t.Fatal("unshare -n did not change the net namespace")
	}
	if want.Dev != tr.NSDev() {
		t.Errorf("nsfs device %d, tracker says %d", want.Dev, tr.NSDev())
	}
	for _, e := range c.events() {
		if e.Kind != taskevent.KindNS || (int(e.TGID) != un.pid() && int(e.TGID) != en.pid()) {
			continue
		}
		if !e.HasContid || e.Contid != id {
			t.Errorf("NS event without contid: %+v", e)
		}
		if got := e.NS[ns.Net]; got != want {
			t.Errorf("%s event of %d: net %v/%d, want %v/%d", e.Op, e.TGID, got, got.Unique, want, want.Unique)
		}
		for _, typ := range []ns.Type{ns.Cgroup, ns.IPC, ns.Mnt, ns.PID, ns.Time, ns.User, ns.UTS} {
			if got, w := e.NS[typ], nsOf(t, os.Getpid(), typ.String()); got != w {
				t.Errorf("%s event: %s %v/%d, want %v/%d", e.Op, typ, got, got.Unique, w, w.Unique)
			}
		}
	}
	if want.Unique == 0 {
		t.Log("kernel has no NS_GET_ID: unique namespace ids not checked")
	}

	// Fork events report the child's namespaces too.
	self = nsOf(t, os.Getpid(), "mnt")
	for _, e := range c.events() {
		if e.Kind == taskevent.KindFork && int(e.ParentTGID) == os.Getpid() && e.NS[ns.Mnt] != self {
			t.Errorf("fork event of a child of the test: mnt %v, want %v", e.NS[ns.Mnt], self)
		}
	}
}

// TestNSScan: by default a thread that unshares and runs on without fork
// or exec is found by the scan; a second scan reports nothing; the thread's
// exit event carries the namespaces it died in.
func TestNSScan(t *testing.T) {
	tr, _ := openTest(t, Config{NSScan: -1}) // scans driven by the test
	c := collect(t, tr)
	h := startThreads(t)
	if _, err := fmt.Fprintln(h.stdin, "unshare"); err != nil {
		t.Fatal(err)
	}
	var tid int
	if line := h.line(t); !scan(line, "unshare %d", &tid) {
		t.Fatalf("helper says %q", line)
	}
	want := nsAt(t, fmt.Sprintf("/proc/%d/task/%d/ns/net", h.pid(), tid))
	if want == nsOf(t, os.Getpid(), "net") {
		t.Fatal("unshare did not change the thread's net namespace")
	}
	// The Go runtime may start a thread at any time, and a thread born
	// after a scan started is rightly reported by the next one: the
	// second scan is checked for the threads listed before the first.
	old := map[int32]bool{}
	for _, tid := range threads(t, h.pid()) {
		old[int32(tid)] = true
	}
	if err := tr.ScanNS(); err != nil {
		t.Fatal(err)
	}
	// Tasks born since the previous scan are reported when first met,
	// with their set unchanged since their fork event but for the thread
	// that unshared.
	self := nsOf(t, os.Getpid(), "net")
	isScan := func(e taskevent.Event) bool {
		return e.Kind == taskevent.KindNS && e.Op == taskevent.NSScan && int(e.TGID) == h.pid()
	}
	evs := c.wait(t, "scan event of the thread", func(evs []taskevent.Event) bool {
		return slices.ContainsFunc(evs, func(e taskevent.Event) bool { return isScan(e) && int(e.TID) == tid })
	})
	// Only the helper's events: the scan also reports any task born
	// elsewhere on the machine since the previous scan.
	count := func(evs []taskevent.Event) int {
		n := 0
		for _, e := range evs {
			if e.Kind == taskevent.KindNS && int(e.TGID) == h.pid() && old[e.TID] {
				n++
			}
		}
		return n
	}
	for _, e := range evs {
		switch {
		case !isScan(e):
		case int(e.TID) == tid:
			if e.NS[ns.Net] != want {
				t.Errorf("scan event of thread %d: net %v, want %v", tid, e.NS[ns.Net], want)
			}
		case e.NS[ns.Net] != self:
			t.Errorf("scan event of unchanged thread %d: net %v, want %v", e.TID, e.NS[ns.Net], self)
		}
	}

	// Nothing changed since: a second scan is silent. The scan writes its
	// events to the ring before ScanNS returns, and the ring is read in
	// order: once the exit of a process started afterwards has been read,
	// every event of the scan has been too.
	before := count(c.events())
	if err := tr.ScanNS(); err != nil {
		t.Fatal(err)
	}
	marker := exec.Command("/bin/true")
	if err := marker.Run(); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "the exit of a process started after the second scan", func(evs []taskevent.Event) bool {
		return slices.ContainsFunc(evs, func(e taskevent.Event) bool { return e.Kind == taskevent.KindExit && int(e.TID) == marker.Process.Pid })
	})
	if n := count(c.events()); n != before {
		t.Errorf("the second scan reported %d NS events, want none", n-before)
	}

	_ = syscall.Kill(h.pid(), syscall.SIGKILL)
	c.wait(t, "exit of the thread", func(evs []taskevent.Event) bool {
		for _, e := range evs {
			if e.Kind == taskevent.KindExit && int(e.TID) == tid {
				if e.NS[ns.Net] != want {
					t.Errorf("exit event: net %v, want %v", e.NS[ns.Net], want)
				}
				return true
			}
		}
		return false
	})
}

// TestBatchWakeup: with batched wakeups, an event after a quiet spell
// wakes the blocked reader, and the tail of a burst, which may wake nobody,
// is found by the reader's timer: each is read although no event follows
// it. (How soon: BenchmarkBatchLatency.)
func TestBatchWakeup(t *testing.T) {
	const batch = 300 * time.Millisecond
	tr, _ := openTest(t, Config{Batch: batch, OnlyTagged: true, NSScan: -1})
	const id contid.ID = 12
	lone := startHeld(t, "exec sleep "+helperLife) // one event: the exec
	burst := startHeld(t, "i=0; while [ $i -lt 20 ]; do /bin/true & i=$((i+1)); done; wait; exec sleep "+helperLife)
	for _, h := range []*held{lone, burst} {
		if err := tr.SetContid(h.pid(), id); err != nil {
			t.Fatal(err)
		}
	}
	goQuiet(t, tr)
	c := collect(t, tr)
	testwait.Parked(t, "tracker.(*Tracker).readRaw")
	isExec := func(h *held) func(taskevent.Event) bool {
		return func(e taskevent.Event) bool {
			return e.Kind == taskevent.KindExec && int(e.TID) == h.pid() && e.Comm == "sleep"
		}
	}
	lone.release(t)
	c.wait(t, "the exec after a quiet spell", func(evs []taskevent.Event) bool { return slices.ContainsFunc(evs, isExec(lone)) })
	burst.release(t)
	c.until(t, "the tail of a burst, the exec of sleep", func(evs []taskevent.Event) (bool, any) {
		n := 0 // the burst's events so far: the progress
		for _, e := range evs {
			if int(e.TGID) != lone.pid() {
				n++
			}
		}
		return slices.ContainsFunc(evs, isExec(burst)), n
	})
}

// goQuiet reads until the tracker's reader has seen a whole batch period
// without events, after which the next event must wake it. It reads itself:
// call it while no other goroutine reads.
func goQuiet(t testing.TB, tr *Tracker) {
	t.Helper()
	testwait.For(t, "a quiet batch period", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*tr.batch)
		defer cancel()
		for {
			if _, err := tr.Read(ctx); err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatal(err)
				}
				break
			}
		}
		tr.readMu.Lock()
		defer tr.readMu.Unlock()
		return tr.quiet
	})
}

// TestTryReadBarrier: once a tagged process has been waited for, TryRead
// until empty has returned its exit event, with batched wakeups (the event
// woke nobody) and right after a Read that returned events its batch timer
// found.
func TestTryReadBarrier(t *testing.T) {
	const batch = 300 * time.Millisecond
	tr, _ := openTest(t, Config{Batch: batch, OnlyTagged: true, NSScan: -1})
	const id contid.ID = 14
	var hs [3]*held
	for i := range hs {
		hs[i] = startTagged(t, tr, id, "exit 0")
	}
	readExit := func(h *held) {
		t.Helper()
		w := testwait.NewWatch(context.Background(), fmt.Sprintf("the exit of %d", h.pid()))
		defer w.Stop()
		for {
			ev, err := tr.Read(w.Context())
			if err != nil {
				t.Fatalf("%v (%v)", err, w.Err())
			}
			if ev.Kind == taskevent.KindExit && int(ev.TID) == h.pid() {
				return
			}
		}
	}
	goQuiet(t, tr) // the next event wakes the reader
	hs[0].release(t)
	readExit(hs[0])
	hs[1].release(t) // within the batch: no wakeup, the timer finds it
	readExit(hs[1])

	// A Read cancelled while waiting, as the daemon's pause does.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if _, err := tr.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v, want the deadline", err)
	}
	cancel()

	hs[2].release(t)
	if err := hs[2].cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	found := drainForExit(t, tr, hs[2].pid())
	if !found {
		t.Errorf("TryRead ran dry before the exit event of %d", hs[2].pid())
	}
}

// TestRestart: the pinned map keeps contids across Close and Open, and
// children created while no tracker is open still inherit.
func TestRestart(t *testing.T) {
	requireRoot(t)
	dir := testPinDir(t)
	tr, err := Open(Config{PinDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const id contid.ID = 31337
	h := startTagged(t, tr, id, "sleep "+helperLife+" & wait")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	h.release(t) // forks while no tracker is open
	kids := waitDescendants(t, h.pid(), 1)

	tr2, err := Open(Config{PinDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	wantContid(t, tr2, h.pid(), id)
	for _, k := range kids {
		wantContid(t, tr2, k, id)
	}
	if err := tr2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Unpin left %s: %v", dir, err)
	}
}

// TestIncompatiblePin: a map of another shape pinned under the map's name
// is reported, not replaced.
func TestIncompatiblePin(t *testing.T) {
	requireRoot(t)
	dir := testPinDir(t)
	if err := ensureBPFFS(dir); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(dir, pinTaskMap)); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(Config{PinDir: dir}, nil)
	if err == nil {
		tr.Close()
		t.Fatal("Open succeeded over an incompatible pin")
	}
	if !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open = %v, want ErrMapIncompatible naming %s", err, dir)
	}
}

// TestSource: the tracker keeps the promises of taskevent.Source.
func TestSource(t *testing.T) {
	requireRoot(t)
	sourcetest.Run(t, sourcetest.Config{
		Open: func(t *testing.T) taskevent.Source {
			tr, err := Open(Config{PinDir: testPinDir(t)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			return tr
		},
		ReadParks: "tracker.(*Tracker).readRaw",
	})
}

// monotonic is CLOCK_MONOTONIC in ns, the clock of taskevent.Event.Time.
func monotonic(t testing.TB) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// ownContid reads the value thread tid holds itself, not its leader's.
func ownContid(tr *Tracker, tid int) (contid.ID, bool, error) {
	fd, err := procfs.OpenThread(tid)
	if err != nil {
		return contid.Unset, false, err
	}
	defer unix.Close(fd)
	return tr.ownContidFD(fd)
}

// TestThreadExec: a thread without a value of its own (one created after
// its group was tagged, which reads its leader's) execs and so becomes the
// group's leader, whose old task is released: keep_on_exec must have given
// it the value first. Also when the old leader had exited long before and
// was a zombie whose storage the thread read.
func TestThreadExec(t *testing.T) {
	for _, leaderExits := range []bool{false, true} {
		t.Run(fmt.Sprintf("leader-exits=%v", leaderExits), func(t *testing.T) {
			tr, _ := openTest(t, Config{})
			if !tr.threadsShare {
				t.Fatal("this kernel lacks sched_prepare_exec (Linux 6.10+): threads do not share their leader's value")
			}
			h, tid := startExecThread(t)
			pid := h.pid()
			const id contid.ID = 79
			if err := tr.SetGroup(pid, 0, id); err != nil {
				t.Fatal(err)
			}
			// The state of a thread created after the registration: no
			// storage of its own.
			fd, err := procfs.OpenThread(tid)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if err := tr.objs.ContidTask.Delete(uint32(fd)); err != nil {
				t.Fatal(err)
			}
			if _, own, err := ownContid(tr, tid); err != nil || own {
				t.Fatalf("thread %d: a value of its own %v, %v", tid, own, err)
			}
			if got, ok, err := tr.Contid(tid); err != nil || !ok || got != id {
				t.Fatalf("thread %d: contid %v, %v, %v; want the leader's %v", tid, got, ok, err, id)
			}
			if leaderExits {
				exitLeader(t, h)
				if got, ok, err := tr.Contid(tid); err != nil || !ok || got != id {
					t.Fatalf("thread %d of a zombie leader: contid %v, %v, %v; want %v", tid, got, ok, err, id)
				}
			}
			if _, err := io.WriteString(h.stdin, "e"); err != nil {
				t.Fatal(err)
			}
			testwait.For(t, "the exec", func() bool { return comm(pid) == "sleep" })
			if got, ok, err := ownContid(tr, pid); err != nil || !ok || got != id {
				t.Errorf("process %d after its thread's exec: contid %v, %v, %v; want %v", pid, got, ok, err, id)
			}
			if ts := threads(t, pid); len(ts) != 1 || ts[0] != pid {
				t.Errorf("after exec: threads %v, want [%d]", ts, pid)
			}
		})
	}
}

// startExecThread starts the exec-thread helper and returns it with the
// tid of its thread T.
func startExecThread(t *testing.T) (*held, int) {
	t.Helper()
	h := startHelper(t, "exec-thread")
	var tid int
	if line := h.line(t); !scan(line, "ready %d", &tid) {
		t.Fatalf("helper says %q", line)
	}
	return h, tid
}

// exitLeader makes the exec-thread helper's leader exit alone and waits
// until it is a zombie.
func exitLeader(t *testing.T, h *held) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "x"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, fmt.Sprintf("leader %d a zombie", h.pid()), func() bool { return procState(h.pid()) == 'Z' })
}

// procState is the state letter of /proc/PID/stat (Z for a zombie).
func procState(pid int) byte {
	st, err := procfs.Host.Stat(int32(pid))
	if err != nil {
		return 0
	}
	return st.State
}

// TestZombieLeaderUntagged: a thread of an untagged process whose leader
// exited first reads as untagged, not as an error.
func TestZombieLeaderUntagged(t *testing.T) {
	tr, _ := openTest(t, Config{})
	h, tid := startExecThread(t)
	exitLeader(t, h)
	if got, ok, err := tr.Contid(tid); err != nil || ok {
		t.Errorf("thread %d of an untagged process with a zombie leader: %v, %v, %v; want untagged", tid, got, ok, err)
	}
}

// TestSetGroupChecksStart: SetGroup with the start time the engine checked
// tags the process; with another start time (what a pid reused since the
// checks has) it is ESRCH and tags nothing, for the leader's pid and for a
// thread's tid alike.
func TestSetGroupChecksStart(t *testing.T) {
	tr, _ := openTest(t, Config{})
	h := startThreads(t)
	st, err := procfs.Host.Stat(int32(h.pid()))
	if err != nil || st.StartTime == 0 {
		t.Fatalf("stat of %d: %+v, %v", h.pid(), st, err)
	}
	const id contid.ID = 78
	var thread int
	for _, tid := range threads(t, h.pid()) {
		if tid != h.pid() {
			thread = tid
		}
	}
	for _, pid := range []int{h.pid(), thread} {
		for _, wrong := range []uint64{st.StartTime + 1, st.StartTime - 1} {
			if err := tr.SetGroup(pid, wrong, id); !errors.Is(err, unix.ESRCH) {
				t.Errorf("SetGroup(%d, start %d, not %d) = %v, want ESRCH", pid, wrong, st.StartTime, err)
			}
		}
	}
	wantUntagged(t, tr, h.pid())
	if err := tr.SetGroup(thread, st.StartTime, id); err != nil {
		t.Fatal(err)
	}
	wantContid(t, tr, h.pid(), id)
}

// TestWait: Wait returns when the kernel side wakes the ring's readers
// after a quiet batch period, and TryRead then finds the event; a
// cancelled context and Close end a Wait that is parked.
func TestWait(t *testing.T) {
	const batch = 300 * time.Millisecond
	tr, _ := openTest(t, Config{Batch: batch, OnlyTagged: true, NSScan: -1})
	const id contid.ID = 15
	h := startTagged(t, tr, id, "exit 0")
	goQuiet(t, tr) // the next event wakes the readers
	waited := make(chan error, 1)
	go func() { waited <- tr.Wait(context.Background()) }()
	testwait.Parked(t, "tracker.(*Tracker).Wait")
	h.release(t)
	if err := testwait.Receive(t, "Wait's return after the exit", waited); err != nil {
		t.Fatal(err)
	}
	found := drainForExit(t, tr, h.pid())
	if !found {
		t.Errorf("TryRead ran dry before the exit event of %d", h.pid())
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { waited <- tr.Wait(ctx) }()
	testwait.Parked(t, "tracker.(*Tracker).Wait")
	cancel()
	if err := testwait.Receive(t, "Wait's return after the cancel", waited); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}

	go func() { waited <- tr.Wait(context.Background()) }()
	testwait.Parked(t, "tracker.(*Tracker).Wait")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Receive(t, "Wait's return after Close", waited); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Wait = %v, want os.ErrClosed", err)
	}
}

// drainForExit reads what tr holds with TryRead until it runs dry and
// says whether the exit event of pid was among it.
func drainForExit(t *testing.T, tr *Tracker, pid int) bool {
	t.Helper()
	found := false
	for {
		ev, ok, err := tr.TryRead()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return found
		}
		found = found || ev.Kind == taskevent.KindExit && int(ev.TID) == pid
	}
}
