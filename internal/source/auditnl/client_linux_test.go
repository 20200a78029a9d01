package auditnl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/testing/testwait"
	"golang.org/x/sys/unix"
)

const testKey = "contid-test"

// setup prepares a test that touches kernel audit: root (skip otherwise:
// as root, kernel audit must work), the machine-wide lock, and the state
// put back afterwards.
func setup(t testing.TB) audittest.State {
	t.Helper()
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	return audittest.Status(t)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// open opens a Client that is closed when the test ends.
func open(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func addExecRule(t testing.TB) {
	t.Helper()
	audittest.Auditctl(t, "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", testKey)
}

// runTrue runs /bin/true n times and returns the pids.
func runTrue(t testing.TB, n int) []int {
	t.Helper()
	var pids []int
	for range n {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	return pids
}

// events groups received records by serial.
type events struct {
	bySerial map[uint64][]Message
	pidOf    map[uint64]int // serial of an execve SYSCALL record with testKey → pid
}

func newEvents() *events {
	return &events{bySerial: map[uint64][]Message{}, pidOf: map[uint64]int{}}
}

func (e *events) add(t testing.TB, m Message) {
	t.Helper()
	st, body, err := m.Stamp()
	if err != nil {
		t.Errorf("record type %d: %v: %q", m.Type, err, m.Data)
		return
	}
	e.bySerial[st.Serial] = append(e.bySerial[st.Serial], m)
	if m.Type == unix.AUDIT_SYSCALL && bytes.Contains(body, []byte(` key="`+testKey+`"`)) {
		if v := field(body, "pid"); v != "" {
			pid, _ := strconv.Atoi(v)
			e.pidOf[st.Serial] = pid
		}
	}
}

// complete reports whether every pid has an event that ended (EOE).
func (e *events) complete(pids []int) bool {
	for _, pid := range pids {
		if e.serialOf(pid) == 0 {
			return false
		}
		if !e.has(e.serialOf(pid), unix.AUDIT_EOE) {
			return false
		}
	}
	return true
}

// progress counts the records of pids' events received so far.
func (e *events) progress(pids []int) int {
	n := 0
	for _, pid := range pids {
		n += len(e.bySerial[e.serialOf(pid)])
	}
	return n
}

func (e *events) serialOf(pid int) uint64 {
	for s, p := range e.pidOf {
		if p == pid {
			return s
		}
	}
	return 0
}

func (e *events) has(serial uint64, typ uint16) bool {
	for _, m := range e.bySerial[serial] {
		if m.Type == typ {
			return true
		}
	}
	return false
}

// field returns the value of " name=" in a record body, unquoted.
func field(body []byte, name string) string {
	s := " " + string(body)
	i := strings.Index(s, " "+name+"=")
	if i < 0 {
		return ""
	}
	v := s[i+len(name)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

// receiveUntil receives records into e until every pid's event is
// complete. It fails when no record of theirs came for testwait.Idle
// (records of the machine's other processes are no progress).
func receiveUntil(t testing.TB, c *Client, e *events, pids []int) {
	t.Helper()
	w := testwait.NewWatch(context.Background(), fmt.Sprintf("the exec events of pids %v", pids))
	defer w.Stop()
	for n := 0; !e.complete(pids); {
		m, err := c.Receive(w.Context())
		if err != nil {
			t.Fatalf("Receive: %v (%v)", err, w.Err())
		}
		e.add(t, m)
		if p := e.progress(pids); p != n {
			n = p
			w.Moved()
		}
	}
}

// receiveType receives records until one of type typ and returns it,
// failing when none came for testwait.Idle.
func receiveType(t testing.TB, c *Client, typ uint16) Message {
	t.Helper()
	w := testwait.NewWatch(context.Background(), fmt.Sprintf("a record of type %d", typ))
	defer w.Stop()
	for {
		m, err := c.Receive(w.Context())
		if err != nil {
			t.Fatalf("Receive: %v (%v)", err, w.Err())
		}
		if m.Type == typ {
			return m
		}
	}
}

// TestPrimaryExecRecords: as the registered daemon, the Client receives
// every record of the execve events of /bin/true under an execve rule,
// with the rule's key and the right pid; Close puts pid and enabled back.
func TestPrimaryExecRecords(t *testing.T) {
	before := setup(t)
	c := open(t, Config{Enable: true})
	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if int(st.PID) != os.Getpid() || st.Enabled != 1 {
		t.Fatalf("Status after Open: pid %d enabled %d; want pid %d enabled 1", st.PID, st.Enabled, os.Getpid())
	}
	addExecRule(t)
	pids := runTrue(t, 5)
	e := newEvents()
	receiveUntil(t, c, e, pids)
	for _, pid := range pids {
		serial := e.serialOf(pid)
		for _, typ := range []uint16{unix.AUDIT_SYSCALL, unix.AUDIT_EXECVE, unix.AUDIT_PATH, unix.AUDIT_PROCTITLE, unix.AUDIT_EOE} {
			if !e.has(serial, typ) {
				t.Errorf("pid %d, serial %d: no record of type %d", pid, serial, typ)
			}
		}
		for _, m := range e.bySerial[serial] {
			_, body, _ := m.Stamp()
			switch m.Type {
			case unix.AUDIT_SYSCALL:
				if field(body, "syscall") != "59" || field(body, "success") != "yes" || field(body, "key") != testKey {
					t.Errorf("SYSCALL: %s", body)
				}
			case unix.AUDIT_EXECVE:
				if field(body, "a0") != "/bin/true" {
					t.Errorf("EXECVE: %s", body)
				}
			case unix.AUDIT_PROCTITLE:
				if field(body, "proctitle") != "/bin/true" {
					t.Errorf("PROCTITLE: %s", body)
				}
			}
		}
	}
	s := c.Stats()
	if s.Messages == 0 || s.Bytes == 0 || s.DecodeErrors != 0 || s.Foreign != 0 || s.ENOBUFS != 0 {
		t.Errorf("Stats %+v", s)
	}
	t.Logf("stats %+v; %d events", s, len(e.bySerial))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after := audittest.Status(t)
	if after.PID != 0 || after.Enabled != before.Enabled {
		t.Errorf("after Close: pid %d enabled %d; want 0 and %d", after.PID, after.Enabled, before.Enabled)
	}
}

// TestSendUser: a user record comes back in the stream with its type and
// its whole text, last byte included.
func TestSendUser(t *testing.T) {
	setup(t)
	c := open(t, Config{Enable: true})
	texts := []string{
		"op=test contid=5 old-contid=-1 pid=1 res=success z",
		strings.Repeat("x", userTextMax-1) + "Z", // the kernel's limit, exactly
	}
	for _, text := range texts {
		if err := c.SendUser(2900, text); err != nil {
			t.Fatalf("SendUser: %v", err)
		}
	}
	for i := 0; i < len(texts); {
		m := receiveType(t, c, 2900)
		_, body, err := m.Stamp()
		if err != nil {
			t.Fatal(err)
		}
		if field(body, "pid") != strconv.Itoa(os.Getpid()) {
			t.Errorf("pid in %q", body[:min(len(body), 80)])
		}
		if want := " msg='" + texts[i] + "'"; !bytes.HasSuffix(body, []byte(want)) {
			t.Errorf("record %d ends %q, want %q", i, body[max(0, len(body)-60):], want[max(0, len(want)-60):])
		}
		i++
	}
	for _, tt := range []struct {
		typ  uint16
		text string
		want error
	}{
		{1335, "op=x", ErrNotUserType}, {1005, "op=x", ErrNotUserType}, {1300, "op=x", ErrNotUserType},
		{2900, "a\nb", ErrBadText}, {2900, "a\x00b", ErrBadText}, {2900, strings.Repeat("x", userTextMax+1), ErrBadText},
	} {
		err := c.SendUser(tt.typ, tt.text)
		if !errors.Is(err, tt.want) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("SendUser(%d, %.10q) = %v, want %v (EINVAL)", tt.typ, tt.text, err, tt.want)
		}
	}
}

// TestUserTextNeedsNUL shows why SendUser NUL-terminates: the kernel
// overwrites the payload's last byte with a NUL.
func TestUserTextNeedsNUL(t *testing.T) {
	setup(t)
	c := open(t, Config{Enable: true})
	c.reqMu.Lock()
	_, err := c.roundTrip(c.req, 2900, []byte("op=raw last=Q"), 0)
	c.reqMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if m := receiveType(t, c, 2900); !bytes.HasSuffix(m.Data, []byte(" msg='op=raw last='")) {
		t.Errorf("without a NUL: %q; expected the kernel to drop the last byte", m.Data)
	}
}

// TestStatusAndSettings: Status reports our pid and the settings Open
// made; Close puts the found values back.
func TestStatusAndSettings(t *testing.T) {
	before := setup(t)
	c := open(t, Config{BacklogLimit: 8191, BacklogWaitTime: 60001})
	var wg sync.WaitGroup
	for range 4 { // Status and SendUser are safe concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				st, err := c.Status()
				if err != nil {
					t.Error(err)
					return
				}
				if int(st.PID) != os.Getpid() || st.BacklogLimit != 8191 || st.BacklogWaitTime != 60001 || st.Enabled != uint32(before.Enabled) {
					t.Errorf("Status %+v", st)
					return
				}
				if err := c.SendUser(2901, "record=1 contid=5"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	after := audittest.Status(t)
	if after.PID != 0 || after.BacklogLimit != before.BacklogLimit || after.BacklogWaitTime != before.BacklogWaitTime || after.Enabled != before.Enabled {
		t.Errorf("after Close %+v, want as found %+v with pid 0", after, before)
	}
	if _, err := c.Status(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Status after Close: %v", err)
	}
	if err := c.SendUser(2900, "x"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("SendUser after Close: %v", err)
	}
}

// TestReceiveInterrupted: a blocked Receive returns when its context is
// done or the Client is closed.
func TestReceiveInterrupted(t *testing.T) {
	setup(t)
	c := open(t, Config{}) // audit stays as found; records may arrive anyway
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var err error
	for err == nil {
		_, err = c.Receive(ctx)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive with a 100ms context: %v", err)
	}
	for i := 0; ; i++ {
		_, ok, err := c.TryReceive()
		if err != nil {
			t.Fatalf("TryReceive: %v", err)
		}
		if !ok {
			break
		}
		if i > 100000 {
			t.Fatal("TryReceive never ran dry")
		}
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := c.Receive(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Receive with a cancelled context: %v", err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := c.Receive(context.Background())
		errc <- err
	}()
	testwait.Parked(t, "auditnl.(*Client).fill")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Receive(t, "the blocked Receive's return after Close", errc); !errors.Is(err, os.ErrClosed) {
		t.Errorf("blocked Receive after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := c.TryReceive(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("TryReceive after Close: %v", err)
	}
}

// TestCloseCountsUnread: records still in the socket at Close are counted
// as Discarded, not lost silently.
func TestCloseCountsUnread(t *testing.T) {
	setup(t)
	c := open(t, Config{Enable: true})
	for i := range 10 {
		if err := c.SendUser(2900, "n="+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel delivers from its own thread: wait until the records are
	// in the socket, without reading them.
	delivered(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Discarded < 10 || s.Messages != 0 {
		t.Errorf("Stats after closing with 10 unread user records: %+v", s)
	}
}

// delivered returns once every record sent so far has been queued to the
// registered daemon's socket, without reading it. The kernel's sender
// (kauditd) hands each record to the multicast listeners and then to the
// daemon, one record after the other: once a listener has received a
// marker record sent last, the daemon's copy of every earlier record is in
// its socket.
func delivered(t testing.TB, primary *Client) {
	t.Helper()
	lis := open(t, Config{Mode: Listener})
	defer lis.Close()
	marker := fmt.Sprintf("op=marker n=%d", time.Now().UnixNano())
	if err := primary.SendUser(2900, marker); err != nil {
		t.Fatal(err)
	}
	w := testwait.NewWatch(context.Background(), "the marker record in a listener")
	defer w.Stop()
	for {
		m, err := lis.Receive(w.Context())
		if err != nil {
			t.Fatalf("listener: %v (%v)", err, w.Err())
		}
		if m.Type == 2900 && bytes.Contains(m.Data, []byte(marker)) {
			return
		}
	}
}

// TestRefuseRegistered: Open refuses to displace a registered daemon,
// naming it; with Takeover it stops it and registers.
func TestRefuseRegistered(t *testing.T) {
	setup(t)
	myComm := procComm(uint32(os.Getpid()))

	// Another Client of this process.
	first := open(t, Config{})
	_, err := Open(Config{}, testLogger(t))
	var reg *RegisteredError
	if !errors.As(err, &reg) || !reg.Self || int(reg.PID) != os.Getpid() || reg.Comm != myComm ||
		!errors.Is(err, ErrDaemonRegistered) || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second Primary in this process: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d (%s)", os.Getpid(), myComm)) {
		t.Errorf("error does not name the pid and comm: %v", err)
	}
	if _, err := Open(Config{Takeover: true}, testLogger(t)); !errors.As(err, &reg) || !reg.Self {
		t.Errorf("Takeover from this process itself: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// Another process.
	helper := startHelperDaemon(t)
	_, err = Open(Config{}, testLogger(t))
	if !errors.As(err, &reg) || int(reg.PID) != helper.Process.Pid || reg.Self || reg.Comm != myComm || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("Primary while pid %d is registered: %v", helper.Process.Pid, err)
	}
	t.Logf("refused: %v", err)
	if st := audittest.Status(t); st.PID != helper.Process.Pid {
		t.Fatalf("the refusal changed the registration: pid %d", st.PID)
	}

	c := open(t, Config{Takeover: true})
	st, err := c.Status()
	if err != nil || int(st.PID) != os.Getpid() {
		t.Fatalf("after Takeover: pid %d, %v", st.PID, err)
	}
	if err := helper.Wait(); err != nil {
		t.Errorf("helper daemon after SIGTERM: %v", err)
	}
}

// startHelperDaemon runs this test binary as another process that
// registers as the audit daemon (TestHelperDaemon) and waits until it has.
func startHelperDaemon(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDaemon$")
	cmd.Env = append(os.Environ(), "CONTID_AUDITNL_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "registered") {
		t.Fatalf("helper daemon: %q, %v", line, err)
	}
	return cmd
}

// TestHelperDaemon is not a test: it is the helper process of
// startHelperDaemon. It registers, reads records until SIGTERM, and
// unregisters on the way out like auditd.
func TestHelperDaemon(t *testing.T) {
	if os.Getenv("CONTID_AUDITNL_HELPER") != "1" {
		return // an entry point, not a test: helper process for TestRefuseRegistered
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := Open(Config{}, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("registered")
	for {
		if _, err := c.Receive(ctx); err != nil {
			break
		}
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "helper close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// drain receives from c in the background into e until the test ends.
func drain(t *testing.T, c *Client) (get func() *events) {
	t.Helper()
	var mu sync.Mutex
	e := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			e.add(t, m)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() *events {
		mu.Lock()
		defer mu.Unlock()
		cp := newEvents()
		for k, v := range e.bySerial {
			cp.bySerial[k] = append([]Message(nil), v...)
		}
		for k, v := range e.pidOf {
			cp.pidOf[k] = v
		}
		return cp
	}
}

// TestListener: a listener receives the same records, byte for byte, as
// the registered daemon beside it.
func TestListener(t *testing.T) {
	setup(t)
	if _, err := Open(Config{Mode: Listener, Enable: true}, nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("listener with Enable: %v", err)
	}
	primary := open(t, Config{Enable: true})
	got := drain(t, primary)
	lis := open(t, Config{Mode: Listener})
	addExecRule(t)
	pids := runTrue(t, 3)
	le := newEvents()
	receiveUntil(t, lis, le, pids)
	var pe *events
	testwait.Until(t, "the primary's copy of the events", func() (bool, any) {
		pe = got()
		return pe.complete(pids), pe.progress(pids)
	})
	for _, pid := range pids {
		ls, ps := le.serialOf(pid), pe.serialOf(pid)
		if ls == 0 || ls != ps {
			t.Fatalf("pid %d: serial %d in the listener, %d in the primary", pid, ls, ps)
		}
		lm, pm := le.bySerial[ls], pe.bySerial[ps]
		if len(lm) != len(pm) {
			t.Fatalf("pid %d: %d records in the listener, %d in the primary", pid, len(lm), len(pm))
		}
		for i := range lm {
			if lm[i].Type != pm[i].Type || !bytes.Equal(lm[i].Data, pm[i].Data) {
				t.Errorf("record %d differs:\nlistener %d %q\nprimary  %d %q", i, lm[i].Type, lm[i].Data, pm[i].Type, pm[i].Data)
			}
		}
	}
	if s := lis.Stats(); s.DecodeErrors != 0 || s.ENOBUFS != 0 {
		t.Errorf("listener stats %+v", s)
	}
}

// TestListenerOverflow: a listener with a tiny receive buffer that does
// not read during a burst loses records; the loss shows as ENOBUFS and as
// serials the primary saw and the listener did not. The kernel's lost
// counter does not move.
func TestListenerOverflow(t *testing.T) {
	before := setup(t)
	primary := open(t, Config{Enable: true})
	got := drain(t, primary)
	lis := open(t, Config{Mode: Listener, RcvBuf: 4096})
	addExecRule(t)
	// A burst while the listener does not read.
	out, err := exec.Command("sh", "-c", burstScript(300)).CombinedOutput()
	if err != nil {
		t.Fatalf("burst: %v %s", err, out)
	}
	// 300 /bin/true and the sh that runs them. The kernel hands each
	// record to the listeners before the daemon: once the primary has
	// them all, the listener has been offered them all.
	var pe *events
	testwait.Until(t, "301 exec events in the primary", func() (bool, any) {
		pe = got()
		return len(pe.pidOf) >= 301, len(pe.pidOf)
	})
	le := newEvents()
	for {
		m, ok, err := lis.TryReceive()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		le.add(t, m)
	}
	var missing int
	for serial := range pe.pidOf {
		if _, ok := le.bySerial[serial]; !ok {
			missing++
		}
	}
	ls, ps := lis.Stats(), primary.Stats()
	st, err := primary.Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("burst of 300 execs: primary %d records (%d exec events), listener %d records (%d events); listener ENOBUFS %d; exec events the listener missed %d of %d; kernel lost %d (was %d)",
		ps.Messages, len(pe.pidOf), ls.Messages, len(le.bySerial), ls.ENOBUFS, missing, len(pe.pidOf), st.Lost, before.Lost)
	if len(pe.pidOf) < 301 {
		t.Errorf("the primary saw %d of 301 exec events", len(pe.pidOf))
	}
	if ls.ENOBUFS == 0 || missing == 0 {
		t.Errorf("no loss visible in the listener: ENOBUFS %d, missing %d", ls.ENOBUFS, missing)
	}
	if int(st.Lost) != before.Lost {
		t.Errorf("kernel lost counter moved: %d → %d", before.Lost, st.Lost)
	}

	// The same with a listener that reads all along: whatever it misses,
	// ENOBUFS must have said so.
	lis2 := open(t, Config{Mode: Listener, RcvBuf: 4096})
	got2 := drain(t, lis2)
	seen := len(pe.pidOf)
	first := pe.pidOf
	out, err = exec.Command("sh", "-c", burstScript(1000)).CombinedOutput()
	if err != nil {
		t.Fatalf("burst: %v %s", err, out)
	}
	testwait.Until(t, "1001 more exec events in the primary", func() (bool, any) {
		pe = got()
		return len(pe.pidOf) >= seen+1001, len(pe.pidOf)
	})
	// The listener has been offered every record (see above); a marker
	// record that reaches its reader shows the reader has taken all of
	// them. The marker itself may be lost with the others: send another
	// until one arrives.
	marker := "op=marker"
	testwait.Until(t, "a marker record in the reading listener", func() (bool, any) {
		for _, ms := range got2().bySerial {
			for _, m := range ms {
				if m.Type == 2901 && bytes.Contains(m.Data, []byte(marker)) {
					return true, nil
				}
			}
		}
		if err := primary.SendUser(2901, marker); err != nil {
			t.Fatal(err)
		}
		return false, lis2.Stats().Messages
	})
	le2 := got2()
	missing = 0
	var total int
	for serial := range pe.pidOf {
		if _, ok := first[serial]; ok {
			continue // the first burst's
		}
		total++
		if _, ok := le2.bySerial[serial]; !ok {
			missing++
		}
	}
	ls2 := lis2.Stats()
	t.Logf("burst of 1000 execs, listener reading: listener %d records, ENOBUFS %d; exec events missed %d of %d", ls2.Messages, ls2.ENOBUFS, missing, total)
	if missing > 0 && ls2.ENOBUFS == 0 {
		t.Errorf("the listener missed %d events and saw no ENOBUFS", missing)
	}
}

// TestCloseWhileKernelWaits: with the record socket full and nobody
// reading, the kernel's sender waits and producers wait on the backlog;
// Close must still return, count what it discards, unregister, and let the
// producers go on.
func TestCloseWhileKernelWaits(t *testing.T) {
	setup(t)
	c := open(t, Config{Enable: true, RcvBuf: 4096})
	addExecRule(t)
	// The producer runs until killed (bounded, so a kernel that never
	// fills the backlog fails the test instead of hanging it): how soon the
	// backlog fills depends on the machine's speed and its other load.
	burst, waited := startBurst(t, 100000)
	child := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", burst.Process.Pid, burst.Process.Pid))
		return string(b)
	}
	var st Status
	testwait.Until(t, "a full backlog", func() (bool, any) {
		var err error
		if st, err = c.Status(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waited:
			t.Fatalf("the producer ended (%v) and the backlog was never seen full: last status %+v, auditctl -s:\n%s\nauditctl -l:\n%s",
				err, st, audittest.Auditctl(t, "-s"), audittest.Auditctl(t, "-l"))
		default:
		}
		// Progress: the backlog, or the producer's child changing.
		return st.Backlog >= st.BacklogLimit, fmt.Sprint(st.Backlog, child())
	})
	blocked := child()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := testwait.Receive(t, "Close's return", closed); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The producers go on: the burst's child changes twice after Close.
	seen := map[string]bool{blocked: true}
	testwait.For(t, "the producer to run two more children after Close", func() bool {
		seen[child()] = true
		return len(seen) >= 3
	})
	s := c.Stats()
	t.Logf("backlog %d/%d at Close; Close took %v; discarded %d; producers moving %v after Close", st.Backlog, st.BacklogLimit, took, s.Discarded, time.Since(start))
	if s.Discarded == 0 {
		t.Errorf("Close discarded nothing")
	}
	if a := audittest.Status(t); a.PID != 0 {
		t.Errorf("pid %d registered after Close", a.PID)
	}
}

// TestPrimaryStall: a Primary client with a tiny socket buffer that stops
// reading during a burst. The kernel's sender waits 100 ms on the full
// socket, then gives up: the socket reports ENOBUFS, and records go to the
// kernel's retry queue, whose overflow counts in Status.Lost, and from
// there, after more failed sends, to the console only, uncounted (unless
// booted with audit=1). The test checks that the stall is visible
// (ENOBUFS) and reports the loss.
func TestPrimaryStall(t *testing.T) {
	for _, stall := range []time.Duration{300 * time.Millisecond, time.Second, 3 * time.Second} {
		t.Run(stall.String(), func(t *testing.T) {
			before := setup(t)
			c := open(t, Config{Enable: true, RcvBuf: 4096})
			addExecRule(t)
			burst, done := startBurst(t, 300)
			time.Sleep(stall) // not reading
			e := newEvents()
			ppid := strconv.Itoa(burst.Process.Pid)
			var children int
			ours := map[uint64]bool{}
			minSerial, maxSerial := uint64(1<<64-1), uint64(0)
			var finished bool
			for quietSince := time.Now(); !finished || time.Since(quietSince) < time.Second; {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					finished = true
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				m, err := c.Receive(ctx)
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				e.add(t, m)
				st, body, _ := m.Stamp()
				minSerial, maxSerial = min(minSerial, st.Serial), max(maxSerial, st.Serial)
				if m.Type == unix.AUDIT_SYSCALL && field(body, "ppid") == ppid {
					children++
					ours[st.Serial] = true
				}
				if ours[st.Serial] {
					// Only the burst's records count as progress: execs of
					// other processes on the machine never stop coming.
					quietSince = time.Now()
				}
			}
			// An exec event here is SYSCALL, BPRM_FCAPS, EXECVE, CWD, PATH,
			// PATH, PROCTITLE, EOE.
			incomplete, absent := 0, map[uint16]int{}
			for serial := range ours {
				if len(e.bySerial[serial]) < 8 {
					incomplete++
					for _, typ := range []uint16{unix.AUDIT_SYSCALL, unix.AUDIT_BPRM_FCAPS, unix.AUDIT_EXECVE, unix.AUDIT_CWD, unix.AUDIT_PATH, unix.AUDIT_PROCTITLE, unix.AUDIT_EOE} {
						if !e.has(serial, typ) {
							absent[typ]++
						}
					}
				}
			}
			gaps := int(maxSerial-minSerial+1) - len(e.bySerial)
			st, err := c.Status()
			if err != nil {
				t.Fatal(err)
			}
			s := c.Stats()
			t.Logf("stalled %v during 300 execs, 8 KiB socket: ENOBUFS %d; exec events %d of 300, %d incomplete (absent types %v); serial gaps %d in %d..%d; kernel lost %d→%d",
				stall, s.ENOBUFS, children, incomplete, absent, gaps, minSerial, maxSerial, before.Lost, st.Lost)
			if s.ENOBUFS == 0 {
				t.Errorf("the stall left no trace: no ENOBUFS")
			}
		})
	}
}

// burstScript is a shell script that runs /bin/true n times.
func burstScript(n int) string {
	return fmt.Sprintf("i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done", n)
}

// startBurst starts burstScript(n); done receives what its Wait returns. A
// cleanup kills it, if it still runs, and reaps it.
func startBurst(t *testing.T, n int) (burst *exec.Cmd, done <-chan error) {
	t.Helper()
	burst = exec.Command("sh", "-c", burstScript(n))
	if err := burst.Start(); err != nil {
		t.Fatal(err)
	}
	waited, reaped := make(chan error, 1), make(chan struct{})
	go func() { waited <- burst.Wait(); close(reaped) }()
	t.Cleanup(func() {
		burst.Process.Kill()
		<-reaped
	})
	return burst, waited
}
