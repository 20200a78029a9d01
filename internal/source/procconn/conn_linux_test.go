package procconn

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/taskevent"
	"github.com/contid/contid/internal/source/taskevent/sourcetest"
	"github.com/contid/contid/internal/testing/testwait"
)

// helperEnv makes the test binary run a helper instead of the tests.
const helperEnv = "PROCCONN_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "threads":
		threadsHelper()
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
		os.Exit(2)
	}
}

// threadsCmd is the test binary run as threadsHelper.
func threadsCmd(t *testing.T) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=threads")
	return cmd
}

// threadsHelper holds four goroutines on OS threads of their own at once,
// so the runtime must have created at least four threads besides the main
// one, and prints the tid of each.
func threadsHelper() {
	const n = 4
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	tids := make(chan int, n)
	ready.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			tids <- unix.Gettid()
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	close(tids)
	for tid := range tids {
		fmt.Println(tid)
	}
	close(release)
	done.Wait()
}

// requireRoot skips without root. As root (CI is root) the connector must
// work: the tests then fail, never skip, when it does not.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the process-events connector needs root (CAP_NET_ADMIN); CI runs as root")
	}
}

func open(t *testing.T, cfg Config) *Conn {
	t.Helper()
	requireRoot(t)
	c, err := Open(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// readUntil reads events until done returns true for one, and returns the
// events for which keep is true (done's included).
func readUntil(t *testing.T, c *Conn, keep, done func(taskevent.Event) bool) []taskevent.Event {
	t.Helper()
	evs, err := readEvents(c, keep, done)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readEvents is readUntil's reader. Kept events are its progress: it fails
// when none came for testwait.Idle (other processes' events, which keep
// arriving on a shared machine, are no progress).
func readEvents(c *Conn, keep, done func(taskevent.Event) bool) ([]taskevent.Event, error) {
	w := testwait.NewWatch(context.Background(), "the next kept event")
	defer w.Stop()
	var out []taskevent.Event
	for {
		ev, err := c.Read(w.Context())
		if err != nil {
			if cause := w.Err(); cause != nil {
				err = cause
			}
			return out, fmt.Errorf("Read after %d kept events: %w", len(out), err)
		}
		if keep(ev) {
			out = append(out, ev)
			w.Moved()
		}
		if done(ev) {
			return out, nil
		}
	}
}

// reading runs readEvents in the background, as the daemon reads: /proc
// lookups work only while the tasks live. keep and done run on the
// reading goroutine. The returned function waits for the result.
func reading(t *testing.T, c *Conn, keep, done func(taskevent.Event) bool) func() []taskevent.Event {
	t.Helper()
	type result struct {
		evs []taskevent.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		evs, err := readEvents(c, keep, done)
		ch <- result{evs, err}
	}()
	return func() []taskevent.Event {
		t.Helper()
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.evs
	}
}

func keepAll() func(taskevent.Event) bool { return func(taskevent.Event) bool { return true } }

// exitOf is a done function for readEvents: the exit of the process whose
// pid is stored in pid once started, after its fork (a pid may be reused,
// and the previous owner's exit may still be on its way).
func exitOf(pid *atomic.Int32) func(taskevent.Event) bool {
	forked := map[int32]bool{}
	return func(ev taskevent.Event) bool {
		switch ev.Kind {
		case taskevent.KindFork:
			forked[ev.TID] = true
		case taskevent.KindExit:
			if p := pid.Load(); p != 0 && ev.TID == p && forked[p] {
				return true
			}
			delete(forked, ev.TID)
		}
		return false
	}
}

func clock(t *testing.T, id int32) uint64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

func procID(t *testing.T, name string) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/" + name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// TestForkExecExit: a shell that runs sleep in the background and waits
// produces exactly fork, exec, fork, exec, exit, exit, with the pids,
// parents, times, start times, comms and credentials right.
func TestForkExecExit(t *testing.T) {
	c := open(t, Config{})
	var shPid atomic.Int32
	wait := reading(t, c, keepAll(), exitOf(&shPid))
	mono0, boot0 := clock(t, unix.CLOCK_MONOTONIC), clock(t, unix.CLOCK_BOOTTIME)
	sh := runSh(t, &shPid, "sleep 0.1 & wait")
	mono1, boot1 := clock(t, unix.CLOCK_MONOTONIC), clock(t, unix.CLOCK_BOOTTIME)
	var sleep int32
	var evs []taskevent.Event
	for _, ev := range wait() {
		if ev.Kind == taskevent.KindFork && ev.ParentTGID == sh {
			sleep = ev.TID
		}
		if ev.TGID == sh || ev.TGID == sleep {
			evs = append(evs, ev)
		}
	}
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s %d", ev.Kind, ev.TID))
	}
	want := []string{
		fmt.Sprintf("fork %d", sh), fmt.Sprintf("exec %d", sh),
		fmt.Sprintf("fork %d", sleep), fmt.Sprintf("exec %d", sleep),
		fmt.Sprintf("exit %d", sleep), fmt.Sprintf("exit %d", sh),
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}

	auid, ses := procID(t, "loginuid"), procID(t, "sessionid")
	for i, ev := range evs {
		t.Logf("%s tid=%d tgid=%d parent=%d/%d time=%d start=%d comm=%q uid=%d auid=%d ses=%d exit=%d",
			ev.Kind, ev.TID, ev.TGID, ev.ParentTID, ev.ParentTGID, ev.Time, ev.StartBoottime, ev.Comm, ev.UID, ev.AUID, ev.Ses, ev.ExitCode)
		// Time is CLOCK_MONOTONIC (ktime_get_ns).
		if ev.Time < mono0 || ev.Time > mono1 {
			t.Errorf("event %d: time %d outside [%d, %d] (CLOCK_MONOTONIC)", i, ev.Time, mono0, mono1)
		}
		if ev.TID != ev.TGID || ev.Thread || ev.HasContid || ev.NS != (taskevent.Event{}).NS {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	// The shell's fork: created by one of this process's threads.
	if f := evs[0]; f.ParentTGID != int32(os.Getpid()) {
		t.Errorf("sh's parent %d/%d, want this process %d", f.ParentTID, f.ParentTGID, os.Getpid())
	} else if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", f.ParentTID)); err != nil {
		t.Errorf("sh's parent tid %d is not a thread of this process: %v", f.ParentTID, err)
	}
	if f := evs[2]; f.ParentTID != sh || f.ParentTGID != sh {
		t.Errorf("sleep's parent %d/%d, want %d", f.ParentTID, f.ParentTGID, sh)
	}
	// Both lived long enough to be read from /proc: the start times are
	// in the window (/proc has 10 ms ticks), the comms right.
	for _, i := range []int{1, 2, 3} {
		ev := evs[i]
		if ev.StartBoottime+1e7 < boot0 || ev.StartBoottime > boot1 {
			t.Errorf("%s %d: start %d outside [%d, %d] (CLOCK_BOOTTIME)", ev.Kind, ev.TID, ev.StartBoottime, boot0, boot1)
		}
	}
	if evs[1].Comm != "sh" || evs[3].Comm != "sleep" || evs[0].Comm != "" || evs[2].Comm != "" {
		t.Errorf("comms %q %q %q %q, want \"\" sh \"\" sleep", evs[0].Comm, evs[1].Comm, evs[2].Comm, evs[3].Comm)
	}
	for _, i := range []int{1, 3} {
		if ev := evs[i]; ev.UID != 0 || ev.AUID != auid || ev.Ses != ses {
			t.Errorf("%s %d: uid %d auid %d ses %d, want 0 %d %d", ev.Kind, ev.TID, ev.UID, ev.AUID, ev.Ses, auid, ses)
		}
	}
	if evs[4].ExitCode != 0 || evs[5].ExitCode != 0 {
		t.Errorf("exit codes %d %d", evs[4].ExitCode, evs[5].ExitCode)
	}
	// A non-zero exit: the wait status as the kernel keeps it.
	cmd := exec.Command("sh", "-c", "exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	cmd.Wait()
	ex := readUntil(t, c, func(taskevent.Event) bool { return true }, func(ev taskevent.Event) bool {
		return ev.Kind == taskevent.KindExit && ev.TID == pid
	})
	if code := ex[len(ex)-1].ExitCode; code != 3<<8 {
		t.Errorf("exit code %#x, want %#x", code, 3<<8)
	}
	if st := c.Stats(); st.Overflows != 0 || st.Malformed != 0 || st.Foreign != 0 || st.Forks < 2 || st.Execs < 2 || st.Exits < 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestCredentials: an exec event carries the uid, loginuid and session id
// the process had after exec.
func TestCredentials(t *testing.T) {
	c := open(t, Config{})
	var shPid atomic.Int32
	wait := reading(t, c, func(ev taskevent.Event) bool { return ev.Kind == taskevent.KindExec }, exitOf(&shPid))
	// Setting the loginuid starts a new audit session for this child only.
	sh := runSh(t, &shPid, "echo 4242 > /proc/self/loginuid && exec setpriv --reuid=65534 sleep 0.1")
	ses := procID(t, "sessionid")
	var comms []string
	for _, ev := range wait() {
		if ev.TGID != sh {
			continue
		}
		comms = append(comms, ev.Comm)
		if ev.Comm == "sleep" && (ev.UID != 65534 || ev.AUID != 4242 || ev.Ses == unknownID || ev.Ses == ses) {
			t.Errorf("sleep: uid %d auid %d ses %d, want 65534 4242 and a new session (not %d)", ev.UID, ev.AUID, ev.Ses, ses)
		}
	}
	// Three execs (sh, setpriv, sleep). Comm is read from /proc when the
	// event is decoded, so an earlier exec may already show a later
	// program's name; the last one is always the final program.
	if len(comms) != 3 || comms[2] != "sleep" {
		t.Errorf("exec comms %q, want three ending in sleep", comms)
	}
}

// TestThread: new threads arrive as forks with Thread set and the process
// as parent, though the kernel names the process's own parent in them.
func TestThread(t *testing.T) {
	c := open(t, Config{})
	cmd := threadsCmd(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	want := map[int32]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		tid, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("helper said %q", out)
		}
		if int32(tid) != pid {
			want[int32(tid)] = true
		}
	}
	if len(want) < 3 {
		t.Fatalf("helper threads %q (pid %d): want at least 3 besides the main one", out, pid)
	}
	forks := readUntil(t, c, func(ev taskevent.Event) bool {
		return ev.Kind == taskevent.KindFork && ev.TGID == pid
	}, func(ev taskevent.Event) bool {
		return ev.Kind == taskevent.KindExit && ev.TID == pid
	})
	threads := 0
	for _, ev := range forks {
		switch {
		case ev.TID == pid:
			if ev.Thread || ev.ParentTGID != int32(os.Getpid()) {
				t.Errorf("the helper's own fork: %+v", ev)
			}
		case !ev.Thread || ev.ParentTID != pid || ev.ParentTGID != pid:
			t.Errorf("thread fork %d: thread %v parent %d/%d, want true %d/%d", ev.TID, ev.Thread, ev.ParentTID, ev.ParentTGID, pid, pid)
		default:
			threads++
			delete(want, ev.TID)
		}
	}
	if len(want) != 0 {
		t.Errorf("no thread fork for the helper's threads %v", want)
	}
	t.Logf("helper %d: %d thread forks", pid, threads)
}

// TestThreadParentRaw shows what the kernel itself reports for a new
// thread: parent_pid/parent_tgid are the child's real_parent, which for a
// thread is the parent of the whole process (here: this test process), not
// the creating thread; child_tgid is the creator's process.
func TestThreadParentRaw(t *testing.T) {
	c := open(t, Config{})
	cmd := threadsCmd(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	cmd.Wait()
	c.readMu.Lock()
	defer c.readMu.Unlock()
	raw := 0
	w := testwait.NewWatch(context.Background(), "the helper's thread forks and exit")
	defer w.Stop()
	for exited := false; !exited; {
		c.msgs = c.msgs[:0]
		if err := c.receiveCtx(w.Context()); err != nil {
			t.Fatalf("%v (%v) after %d thread forks", err, w.Err(), raw)
		}
		c.queue, c.head = c.queue[:0], 0
		for _, m := range c.msgs {
			switch {
			case m.what == whatFork && m.ev.TGID == pid && m.ev.TID != pid:
				raw++
				w.Moved()
				// The parent's tgid is this process; its pid is whichever of
				// our threads forked the helper (Go forks from any thread).
				if m.kparent[1] != int32(os.Getpid()) {
					t.Errorf("thread %d: kernel parent %v, want a thread of this process %d", m.ev.TID, m.kparent, os.Getpid())
				}
			case m.what == whatExit && m.ev.TID == pid:
				exited = true
			}
		}
	}
	if raw == 0 {
		t.Fatal("no thread fork of the helper")
	}
}

// TestFilter: by default, on 6.6+, the kernel sends only fork, exec and
// exit; with AllEvents it sends the rest too. A comm change (writing
// /proc/self/comm) tells them apart.
func TestFilter(t *testing.T) {
	filtered := open(t, Config{})
	all := open(t, Config{AllEvents: true})
	fs0, as0 := filtered.Stats(), all.Stats() // their own acknowledgements
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var major, minor int
	fmt.Sscanf(release, "%d.%d", &major, &minor)
	if wantFilter := major > 6 || major == 6 && minor >= 6; filtered.Stats().Filtered != wantFilter {
		t.Fatalf("kernel %s: Filtered %v, want %v", release, filtered.Stats().Filtered, wantFilter)
	}
	if all.Stats().Filtered {
		t.Fatal("AllEvents: Filtered")
	}
	cmd := exec.Command("sh", "-c", "echo procconn-test > /proc/self/comm")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	isExit := func(ev taskevent.Event) bool { return ev.Kind == taskevent.KindExit && ev.TID == pid }
	none := func(taskevent.Event) bool { return false }
	readUntil(t, filtered, none, isExit)
	readUntil(t, all, none, isExit)
	fs, as := filtered.Stats(), all.Stats()
	t.Logf("filtered %+v", fs)
	t.Logf("all      %+v", as)
	if as.Ignored == 0 || as0.Acks == 0 {
		t.Errorf("AllEvents saw no comm event or no acknowledgement: %+v", as)
	}
	if fs.Filtered && (fs.Ignored != 0 || fs.Acks != fs0.Acks) {
		t.Errorf("the kernel filter let through events contid does not use: %+v", fs)
	}
	if as.SeqGaps != 0 || as.Overflows != 0 {
		t.Errorf("AllEvents lost events: %+v", as)
	}
}

// TestTryRead: on an idle socket TryRead says so; after a child has been
// waited for, TryRead until ok is false has returned its exit.
func TestTryRead(t *testing.T) {
	c := open(t, Config{})
	drain := func() []taskevent.Event {
		t.Helper()
		var evs []taskevent.Event
		for range 1_000_000 {
			ev, ok, err := c.TryRead()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		}
		t.Fatal("TryRead never said the socket was empty")
		return nil
	}
	drain() // now idle, but for what other processes do meanwhile
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	cmd.Wait()
	var kinds []taskevent.Kind
	for _, ev := range drain() {
		if ev.TID == pid {
			kinds = append(kinds, ev.Kind)
		}
	}
	if fmt.Sprint(kinds) != fmt.Sprint([]taskevent.Kind{taskevent.KindFork, taskevent.KindExec, taskevent.KindExit}) {
		t.Fatalf("TryRead after Wait: %v for pid %d", kinds, pid)
	}
}

// TestSource: the connection keeps the promises of taskevent.Source.
func TestSource(t *testing.T) {
	requireRoot(t)
	sourcetest.Run(t, sourcetest.Config{
		Open: func(t *testing.T) taskevent.Source {
			c, err := Open(Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		},
		ReadParks: "procconn.(*Conn).receive",
	})
}

// TestOverflowCounted: with a receive buffer far too small and nobody
// reading, a burst overflows it; the loss shows in Overflows and, without
// the kernel filter, in the sequence gaps.
func TestOverflowCounted(t *testing.T) {
	c := open(t, Config{RcvBuf: 1, AllEvents: true})
	drain := func() {
		t.Helper()
		for {
			_, ok, err := c.TryRead()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return
			}
		}
	}
	// Sequence numbers are per CPU: a gap shows when a CPU's next message
	// arrives after one of its messages was received. An exec pinned to
	// each CPU makes messages there (left to the scheduler, they may all
	// land on one CPU), before the burst, so that every CPU has a
	// received sequence number to count from (on a busy machine the
	// burst's few received messages may all come from one CPU), and
	// after it, to show the gaps.
	touchCPUs := func() {
		t.Helper()
		for cpu := range runtime.NumCPU() {
			if err := exec.Command("taskset", "-c", strconv.Itoa(cpu), "/bin/true").Run(); err != nil {
				t.Fatal(err)
			}
			drain()
		}
	}
	touchCPUs()
	if err := exec.Command("sh", "-c", "for i in $(seq 300); do /bin/true & done; wait").Run(); err != nil {
		t.Fatal(err)
	}
	drain()
	touchCPUs()
	st := c.Stats()
	t.Logf("rcvbuf %d: %+v", st.RcvBuf, st)
	if st.Overflows == 0 || st.SeqGaps == 0 || st.SeqSkipped < 100 {
		t.Fatalf("loss not counted: %+v", st)
	}
}

// TestBurst: 20,000 short-lived children forked as fast as a shell can,
// read with the default 16 MiB buffer: nothing lost, every child's fork and
// exit seen. The figures are logged (go test -v -run TestBurst).
func TestBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		{"all-events", Config{AllEvents: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { burst(t, tc.cfg, 20000) })
	}
}

func burst(t *testing.T, cfg Config, n int) {
	c := open(t, cfg)
	type rec struct {
		kind             taskevent.Kind
		tid, ptgid, tgid int32
		time             uint64
	}
	var (
		shPid atomic.Int32
		evs   []rec
		total int
	)
	done := exitOf(&shPid)
	// Every event is recorded; those of the shell's tree are kept, as the
	// progress that keeps the reader's idle timeout from expiring.
	tree := map[int32]bool{}
	wait := reading(t, c, func(ev taskevent.Event) bool {
		total++
		evs = append(evs, rec{ev.Kind, ev.TID, ev.ParentTGID, ev.TGID, ev.Time})
		sh := shPid.Load()
		if ev.Kind == taskevent.KindFork && sh != 0 && ev.ParentTGID == sh {
			tree[ev.TID] = true
		}
		progress := tree[ev.TID] || ev.TGID == sh
		if ev.Kind == taskevent.KindExit {
			delete(tree, ev.TID)
		}
		return progress
	}, done)
	start := time.Now()
	sh := runSh(t, &shPid, fmt.Sprintf("for i in $(seq %d); do /bin/true & done; wait", n))
	ran := time.Since(start)
	wait()
	read := time.Since(start)

	live := map[int32]bool{}
	var forks, exits, execs int
	var first, last uint64
	for _, e := range evs {
		switch {
		case e.kind == taskevent.KindFork && e.ptgid == sh && e.tid == e.tgid:
			if live[e.tid] {
				t.Errorf("child %d forked twice without an exit", e.tid)
			}
			live[e.tid] = true
			forks++
			if first == 0 {
				first = e.time
			}
		case e.kind == taskevent.KindExec && live[e.tid]:
			execs++
		case e.kind == taskevent.KindExit && live[e.tid]:
			delete(live, e.tid)
			exits++
			last = e.time
		}
	}
	st := c.Stats()
	span := time.Duration(last - first)
	t.Logf("%d children (%s): forks %d, execs %d, exits %d, unmatched %d; sh ran %v, reader done %v; "+
		"kernel span %v: %.0f forks/s, %.0f events/s; events read %d",
		n, cmdDesc(cfg), forks, execs, exits, len(live), ran.Round(time.Millisecond), read.Round(time.Millisecond),
		span.Round(time.Millisecond), float64(forks)/span.Seconds(), float64(forks+execs+exits)/span.Seconds(), total)
	t.Logf("stats %+v", st)
	if st.Overflows != 0 || st.SeqGaps != 0 || st.Malformed != 0 {
		t.Errorf("loss: %+v", st)
	}
	// The shell forks n children and one for $(seq ...).
	if forks != n+1 || exits != forks || len(live) != 0 {
		t.Errorf("forks %d exits %d unmatched %d, want %d each and none", forks, exits, len(live), n+1)
	}
}

func cmdDesc(cfg Config) string {
	return fmt.Sprintf("rcvbuf %d, all events %v, no procfs %v", cfg.RcvBuf, cfg.AllEvents, cfg.NoProcfs)
}

// runSh runs sh -c script to its end, storing its pid in pid as soon as
// it is known (the reader's stop condition may name it), and returns it.
func runSh(t *testing.T, pid *atomic.Int32, script string) int32 {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := int32(cmd.Process.Pid)
	pid.Store(sh)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return sh
}
