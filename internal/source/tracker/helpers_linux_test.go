package tracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/taskevent"
	"github.com/contid/contid/internal/testing/testwait"
)

// helperEnv makes the test binary act as a multi-threaded helper process.
const helperEnv = "CONTID_TRACKER_HELPER"

func init() {
	// The exec-thread helper needs its main goroutine on the main thread,
	// the group leader; during init it is there.
	if strings.HasPrefix(os.Getenv(helperEnv), "exec-thread") {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	switch h := os.Getenv(helperEnv); {
	case strings.HasPrefix(h, "exec-thread"):
		execThreadHelper()
		return
	case h == "threads":
		threadsHelper()
		return
	case strings.HasPrefix(h, "bench:"):
		benchHelper(h)
		return
	}
	os.Exit(m.Run())
}

// helperLife bounds how long helper processes and their children outlive
// a test that failed to kill them; tests kill them at cleanup.
const helperLife = "600"

// threadsHelper starts four OS threads, prints "ready", and on each line of
// stdin starts four more threads and a `sleep 600` child, printing
// "more CHILDPID FORKERTID" — or, for the line "uring", an io_uring worker thread,
// printing "uring TID", and for "unshare" a thread in a new network
// namespace, printing "unshare TID". It exits 600 s after stdin closes.
func threadsHelper() {
	block := make(chan struct{})
	spawn := func() {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				runtime.LockOSThread() // never unlocked: a thread of its own
				wg.Done()
				<-block
			}()
		}
		wg.Wait()
	}
	spawn()
	fk := newForker()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "unshare" {
			tid, err := unshareThread()
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("unshare", tid)
			continue
		}
		if sc.Text() == "uring" {
			tid, _, err := startIOWorker() // the ring stays open
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("uring", tid)
			continue
		}
		spawn()
		pid, forker, err := fk.fork()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("more", pid, forker)
	}
	// A background job of sh has /dev/null as stdin: stay a while.
	n, _ := strconv.Atoi(helperLife)
	time.Sleep(time.Duration(n) * time.Second)
	os.Exit(0)
}

// forker runs fork requests on one thread, started with the helper, that
// is not the group leader, so that the thread that forks is an old one.
type forker struct {
	req chan chan [3]int // pid, tid, errno-ish (0 ok)
}

func newForker() *forker {
	f := &forker{req: make(chan chan [3]int)}
	for {
		ok := make(chan bool)
		go func() {
			runtime.LockOSThread() // never unlocked
			if syscall.Gettid() == os.Getpid() {
				ok <- false
				select {} // keep the leader busy; try another thread
			}
			ok <- true
			for r := range f.req {
				cmd := exec.Command("sleep", helperLife)
				if err := cmd.Start(); err != nil {
					r <- [3]int{0, 0, 1}
					continue
				}
				r <- [3]int{cmd.Process.Pid, syscall.Gettid(), 0}
			}
		}()
		if <-ok {
			return f
		}
	}
}

// fork starts `sleep 600` and returns its pid and the forking thread's tid.
func (f *forker) fork() (pid, tid int, err error) {
	r := make(chan [3]int)
	f.req <- r
	v := <-r
	if v[2] != 0 {
		return 0, 0, fmt.Errorf("fork failed")
	}
	return v[0], v[1], nil
}

// unshareThread starts a thread that moves to a new network namespace
// with unshare(2) and then just stays; it returns its tid.
func unshareThread() (int, error) {
	type res struct {
		tid int
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with it
		err := syscall.Unshare(syscall.CLONE_NEWNET)
		ch <- res{syscall.Gettid(), err}
		select {}
	}()
	r := <-ch
	return r.tid, r.err
}

// requireRoot skips without root; with root every facility the tracker
// needs must work, and a test fails when one is missing.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs these as root)")
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// openTest opens a tracker with a pin directory of its own, removed at the
// end of the test.
func openTest(t testing.TB, cfg Config) (*Tracker, string) {
	t.Helper()
	requireRoot(t)
	if cfg.PinDir == "" {
		cfg.PinDir = testPinDir(t)
	}
	tr, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := Unpin(cfg.PinDir); err != nil {
			t.Errorf("Unpin: %v", err)
		}
	})
	return tr, cfg.PinDir
}

func testPinDir(t testing.TB) string {
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	dir := filepath.Join(bpffsRoot, fmt.Sprintf("contid-test-%d-%s", os.Getpid(), name))
	t.Cleanup(func() { _ = Unpin(dir) })
	return dir
}

// collector reads events in the background.
type collector struct {
	mu     sync.Mutex
	evs    []taskevent.Event
	recv   []uint64 // CLOCK_MONOTONIC when each event was read
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func collect(t testing.TB, tr *Tracker) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			ev, err := tr.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.mu.Lock()
					c.err = err
					c.mu.Unlock()
				}
				return
			}
			var ts unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.recv = append(c.recv, uint64(ts.Nano()))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	c.cancel()
	<-c.done
}

// lag returns how long after it happened the first event matching pred
// was read; ok is false if none was.
func (c *collector) lag(pred func(taskevent.Event) bool) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.evs {
		if pred(e) {
			return time.Duration(c.recv[i] - e.Time), true
		}
	}
	return 0, false
}

func (c *collector) events() []taskevent.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]taskevent.Event(nil), c.evs...)
}

// wait polls until cond holds on the events so far: one step, which must
// come within testwait.Idle.
func (c *collector) wait(t testing.TB, what string, cond func([]taskevent.Event) bool) []taskevent.Event {
	t.Helper()
	return c.until(t, what, func(evs []taskevent.Event) (bool, any) { return cond(evs), nil })
}

// waitCount polls until count of the events so far reaches want. The count
// is the progress: the wait fails only when it stood still for
// testwait.Idle (the machine's other events do not count).
func (c *collector) waitCount(t testing.TB, what string, want int, count func([]taskevent.Event) int) []taskevent.Event {
	t.Helper()
	return c.until(t, what, func(evs []taskevent.Event) (bool, any) {
		n := count(evs)
		return n >= want, fmt.Sprintf("%d of %d", n, want)
	})
}

// until polls cond on the events so far until it is done; its mark is the
// progress (testwait.Until).
func (c *collector) until(t testing.TB, what string, cond func([]taskevent.Event) (bool, any)) []taskevent.Event {
	t.Helper()
	var evs []taskevent.Event
	testwait.Until(t, what, func() (bool, any) {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		evs = c.events()
		return cond(evs)
	})
	return evs
}

// held is a process started blocked: `sh -c 'read x; SCRIPT'` waits for
// release before running SCRIPT, so it can be tagged first.
type held struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File
	out    *bufio.Reader
}

func startHeld(t testing.TB, script string) *held {
	t.Helper()
	return start(t, exec.Command("sh", "-c", "read x; "+script))
}

// startTagged is startHeld with the held shell given contid id.
func startTagged(t testing.TB, tr *Tracker, id contid.ID, script string) *held {
	t.Helper()
	h := startHeld(t, script)
	if err := tr.SetContid(h.pid(), id); err != nil {
		t.Fatal(err)
	}
	return h
}

func start(t testing.TB, cmd *exec.Cmd) *held {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	// A process group of its own, so that cleanup kills its descendants.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, _ := stdout.(*os.File) // a pipe: it takes read deadlines
	h := &held{cmd: cmd, stdin: stdin, stdout: f, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return h
}

// startHelper starts the test binary as the helper named role (see
// TestMain).
func startHelper(t testing.TB, role string) *held {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	return start(t, cmd)
}

// startThreads starts the threads helper and waits until it is ready.
func startThreads(t testing.TB) *held {
	t.Helper()
	h := startHelper(t, "threads")
	if got := h.line(t); got != "ready" {
		t.Fatalf("helper says %q", got)
	}
	return h
}

func (h *held) pid() int { return h.cmd.Process.Pid }

func (h *held) release(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.stdin.Close(); err != nil {
		t.Fatal(err)
	}
}

// line reads the helper's next line, failing when none comes within
// testwait.Idle.
func (h *held) line(t testing.TB) string {
	t.Helper()
	if h.stdout != nil {
		h.stdout.SetReadDeadline(time.Now().Add(testwait.Idle()))
	}
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from helper %d: %v", h.pid(), err)
	}
	return strings.TrimSpace(s)
}

// threads lists the tids of process pid.
func threads(t testing.TB, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, n)
		}
	}
	return tids
}

// descendants lists pid's live descendant processes (not pid itself).
func descendants(t testing.TB, pid int) []int {
	t.Helper()
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		if err != nil {
			continue // exited
		}
		for _, e := range ents {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, e.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// wantContid checks every thread of pid carries id.
func wantContid(t testing.TB, tr *Tracker, pid int, id contid.ID) {
	t.Helper()
	// A thread the runtime is creating right now is listed in /proc before
	// task_newtask gives it its value (copy_process links it first): such
	// a thread is asked again until it has got it. A thread that was
	// missed keeps no value and fails after testwait.Idle.
	for _, tid := range threads(t, pid) {
		var (
			got contid.ID
			ok  bool
			err error
		)
		testwait.For(t, fmt.Sprintf("thread %d of process %d (%s) to carry contid %v", tid, pid, comm(tid), id), func() bool {
			got, ok, err = tr.Contid(tid)
			return err != nil || ok && got == id
		})
		if err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: exited since the listing
			t.Errorf("Contid(%d) of process %d: %v", tid, pid, err)
		}
	}
}

// wantUntagged checks no thread of pid has task storage in the contid
// map at all (not merely a value without a contid).
func wantUntagged(t testing.TB, tr *Tracker, pid int) {
	t.Helper()
	for _, tid := range threads(t, pid) {
		fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
		if err != nil {
			t.Errorf("pidfd of %d: %v", tid, err)
			continue
		}
		var v trackerTaskVal
		err = tr.objs.ContidTask.Lookup(uint32(fd), &v)
		unix.Close(fd)
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("untagged thread %d of process %d (%s) has task storage: %+v, %v", tid, pid, comm(tid), v, err)
		}
	}
}

func comm(tid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tid))
	return strings.TrimSpace(string(b))
}

// waitDescendants waits until pid has at least n live descendants.
func waitDescendants(t testing.TB, pid, n int) []int {
	t.Helper()
	var d []int
	testwait.Until(t, fmt.Sprintf("%d descendants of process %d", n, pid), func() (bool, any) {
		d = descendants(t, pid)
		return len(d) >= n, len(d)
	})
	return d
}

// execThreadHelper starts a thread T and prints "ready TID". T then reads
// stdin a byte at a time: 'x' makes the main thread (the group leader) exit
// alone, leaving a zombie leader; 'e' makes T exec `sleep 600`, which makes
// it the group's leader (de_thread). After the leader's exit only raw
// syscalls run: the dead thread's goroutine would hold up any
// stop-the-world.
func execThreadHelper() {
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if unix.Gettid() != unix.Getpid() {
		fail(errors.New("main goroutine is not on the main thread"))
	}
	debug.SetGCPercent(-1)
	path, err := syscall.BytePtrFromString("/bin/sleep")
	if err != nil {
		fail(err)
	}
	argv, err := syscall.SlicePtrFromStrings([]string{"sleep", helperLife})
	if err != nil {
		fail(err)
	}
	envv, err := syscall.SlicePtrFromStrings(nil)
	if err != nil {
		fail(err)
	}
	leaderExit := make(chan struct{})
	tid := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: T is this goroutine's
		tid <- unix.Gettid()
		var b [1]byte
		for {
			n, _, errno := syscall.RawSyscall(syscall.SYS_READ, 0, uintptr(unsafe.Pointer(&b[0])), 1)
			if n != 1 || errno != 0 {
				syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
			}
			switch b[0] {
			case 'x':
				close(leaderExit)
			case 'e':
				syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
					uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])))
				syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
			}
		}
	}()
	fmt.Println("ready", <-tid)
	<-leaderExit
	syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
}
