package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/records"
)

// collect is a Sink that keeps records.
type collect struct{ recs []records.Record }

func (c *collect) Emit(r records.Record) { c.recs = append(c.recs, r) }

// fields renders a record's fields as "k=v k=v" for assertions.
func fields(r records.Record) string {
	var b strings.Builder
	for i, f := range r.Fields {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Key + "=" + f.Value)
	}
	return b.String()
}

var (
	hostNet = ns.ID{Dev: 4, Ino: 4026531840, Unique: 1}
	hostMnt = ns.ID{Dev: 4, Ino: 4026531841, Unique: 2}
	newNet  = ns.ID{Dev: 4, Ino: 4026532200, Unique: 30}
)

// world is an engine seeded with init (1) and a root shell (100).
type world struct {
	t    *testing.T
	e    *Engine
	out  *collect
	now  int64
	next int32
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, out: &collect{}, now: 1_700_000_000_000_000_000, next: 1000}
	w.e = New(Config{Sink: w.out})
	set := ns.Set{}
	set[ns.Net], set[ns.Mnt] = hostNet, hostMnt
	root := Subject{AUID: 0, Ses: 1, Comm: "bash", Exe: "/bin/bash"}
	for _, s := range []SeedTask{
		{PID: 1, TGID: 1, Start: 1, NS: set, Subject: Subject{AUID: UnsetID, Ses: UnsetID, Comm: "init"}},
		{PID: 100, TGID: 100, PPID: 1, Start: 100, NS: set, Subject: root},
	} {
		if err := w.e.SeedTask(s); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) tick() int64 { w.now += 1_000_000; return w.now }

func (w *world) fork(parent int32) int32 {
	w.next++
	w.e.Fork(Fork{Time: w.tick(), Parent: parent, Child: w.next, ChildTGID: w.next, Start: uint64(w.now)})
	return w.next
}

func (w *world) thread(creator, tgid int32) int32 {
	w.next++
	w.e.Fork(Fork{Time: w.tick(), Parent: creator, Child: w.next, ChildTGID: tgid, Start: uint64(w.now)})
	return w.next
}

func (w *world) exit(pid int32) { w.e.Exit(Exit{Time: w.tick(), PID: pid}) }

func (w *world) ref(pid int32) TaskRef {
	ti, ok := w.e.Task(pid)
	if !ok {
		w.t.Fatalf("no task %d", pid)
	}
	return TaskRef{PID: ti.TGID, Start: ti.Start}
}

// set asks, as caller (a root process unless cap is false), to set target.
func (w *world) set(caller int32, forParent, capable bool, target int32, v string) error {
	_, err := w.e.SetContid(SetContid{Time: w.tick(), Caller: w.ref(caller), ForParent: forParent, CallerCap: capable, Target: target, Value: v})
	return err
}

func (w *world) chain(pid int32) string { return w.e.Chain(pid).String() }

func (w *world) last() records.Record {
	w.t.Helper()
	if len(w.out.recs) == 0 {
		w.t.Fatal("no record")
	}
	return w.out.recs[len(w.out.recs)-1]
}

// lastOp returns the newest CONTAINER_OP record.
func (w *world) lastOp() records.Record {
	for i := len(w.out.recs) - 1; i >= 0; i-- {
		if w.out.recs[i].Type == records.ContainerOp {
			return w.out.recs[i]
		}
	}
	w.t.Fatal("no CONTAINER_OP")
	return records.Record{}
}

func wantErrno(t *testing.T, err error, want unix.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("want %s, got %v", ErrnoName(want), err)
	}
}

// TestSetRules checks every rule of spec §3 in order, from a fresh world
// each time, and that each attempt is logged.
func TestSetRules(t *testing.T) {
	tests := []struct {
		name  string
		run   func(w *world) error
		errno unix.Errno
	}{
		{"no such target", func(w *world) error { return w.set(100, false, true, 4242, "5") }, unix.ESRCH},
		{"ESRCH before EINVAL", func(w *world) error { return w.set(100, false, true, 4242, "x") }, unix.ESRCH},
		{"unset value", func(w *world) error { return w.set(100, false, true, w.fork(100), "18446744073709551615") }, unix.EINVAL},
		{"not a number", func(w *world) error { return w.set(100, false, true, w.fork(100), "-5") }, unix.EINVAL},
		{"overflow", func(w *world) error { return w.set(100, false, true, w.fork(100), "18446744073709551616") }, unix.ERANGE},
		{"EINVAL before EPERM", func(w *world) error { return w.set(100, false, false, w.fork(100), "x") }, unix.EINVAL},
		{"unprivileged", func(w *world) error { return w.set(100, false, false, w.fork(100), "5") }, unix.EPERM},
		{"EPERM before EBUSY", func(w *world) error { c := w.fork(100); w.fork(c); return w.set(100, false, false, c, "5") }, unix.EPERM},
		{"has children", func(w *world) error { c := w.fork(100); w.fork(c); return w.set(100, false, true, c, "5") }, unix.EBUSY},
		{"EBUSY before EXDEV", func(w *world) error { w.fork(100); return w.set(100, false, true, 100, "5") }, unix.EBUSY},
		{"self", func(w *world) error { return w.set(100, false, true, 100, "5") }, unix.EXDEV},
		// The helper is the orchestrator's child, so rule 4 answers first.
		{"helper sets its orchestrator", func(w *world) error { h := w.fork(100); return w.set(h, true, true, 100, "5") }, unix.EBUSY},
		{"caller sets its own process", func(w *world) error { h := w.fork(100); return w.set(h, false, true, h, "5") }, unix.EXDEV},
		{"not a descendant", func(w *world) error { o := w.fork(100); t := w.fork(100); return w.set(o, false, true, t, "5") }, unix.EXDEV},
		{"success", func(w *world) error { return w.set(100, false, true, w.fork(100), "5") }, 0},
		{"zero is a valid contid", func(w *world) error { return w.set(100, false, true, w.fork(100), "0") }, 0},
		{"helper acts for the shell", func(w *world) error {
			t := w.fork(100)
			h := w.fork(100)
			return w.set(h, true, true, t, "5")
		}, 0},
		{"set again", func(w *world) error {
			c := w.fork(100)
			if err := w.set(100, false, true, c, "5"); err != nil {
				return err
			}
			return w.set(100, false, true, c, "6")
		}, unix.EEXIST},
		{"set same", func(w *world) error {
			c := w.fork(100)
			w.set(100, false, true, c, "5")
			return w.set(100, false, true, c, "5")
		}, unix.EEXIST},
		{"owner re-sets a child forked after registration", func(w *world) error {
			c := w.fork(100)
			w.set(100, false, true, c, "5")
			return w.set(100, false, true, w.fork(c), "6")
		}, unix.EEXIST},
		{"live ID of another orchestrator", func(w *world) error {
			o2 := w.fork(100)
			w.set(100, false, true, w.fork(100), "5")
			return w.set(o2, false, true, w.fork(o2), "5")
		}, unix.ENOTUNIQ},
		{"live ID whose owner exited", func(w *world) error {
			o1 := w.fork(100)
			w.set(o1, false, true, w.fork(o1), "5")
			w.exit(o1)
			return w.set(100, false, true, w.fork(100), "5")
		}, unix.ENOTUNIQ},
		{"outside descendant of the owner cannot pull a task out", func(w *world) error {
			c := w.fork(100)
			w.set(100, false, true, c, "5")
			h := w.fork(100) // uncontained, descends from the owner's parent only
			o := w.fork(h)
			_ = o
			return w.set(h, false, true, c, "6")
		}, unix.EXDEV},
		{"contained process cannot borrow its orchestrator", func(w *world) error {
			// 100 registers c (5); c, privileged, acts for its parent 100
			// to register a fresh sibling before 100 does.
			c := w.fork(100)
			w.set(100, false, true, c, "5")
			s := w.fork(100)
			return w.set(c, true, true, s, "9")
		}, unix.EPERM},
		{"contained helper reaches only its own subtree", func(w *world) error {
			c := w.fork(100)
			w.set(100, false, true, c, "5")
			s := w.fork(100)
			h := w.fork(c) // acts for c, in c's container: allowed, but s is not c's
			return w.set(h, true, true, s, "9")
		}, unix.EXDEV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			before := len(w.out.recs)
			err := tt.run(w)
			wantErrno(t, err, tt.errno)
			if len(w.out.recs) == before {
				t.Fatal("the attempt wrote no record")
			}
			op := fields(w.lastOp())
			res := "res=success"
			if tt.errno != 0 {
				res = "res=failed errno=" + ErrnoName(tt.errno)
			}
			if !strings.HasSuffix(op, res) {
				t.Fatalf("CONTAINER_OP %q does not end with %q", op, res)
			}
		})
	}
}

func TestSetRecordsRequestedValue(t *testing.T) {
	w := newWorld(t)
	c := w.fork(100)
	wantErrno(t, w.set(100, false, true, c, "18446744073709551615"), unix.EINVAL)
	if got := fields(w.last()); !strings.Contains(got, "op=set opid="+fmt.Sprint(c)+" contid=18446744073709551615 old-contid=-1 pid=100 ") {
		t.Fatalf("unset attempt logged as %q", got)
	}
	wantErrno(t, w.set(100, false, true, c, "7"), 0)
	wantErrno(t, w.set(100, false, true, c, "7"), unix.EEXIST)
	if got := fields(w.last()); !strings.Contains(got, " contid=7 old-contid=7 ") {
		t.Fatalf("set-same logged as %q", got)
	}
	// Hostile bytes never become fields.
	wantErrno(t, w.set(100, false, true, w.fork(100), "1 res=success"), unix.EINVAL)
	r := w.last()
	if v, _ := r.Get("contid"); v != "1 res=success" || r.Fields[2].Enc != records.Untrusted {
		t.Fatalf("hostile value kept as %+v", r.Fields[2])
	}
}

func TestInheritanceInjectionAndDrop(t *testing.T) {
	w := newWorld(t)
	a := w.fork(100)
	wantErrno(t, w.set(100, false, true, a, "5"), 0)
	child := w.fork(a)
	th := w.thread(child, child)
	grand := w.fork(th)
	for _, p := range []int32{a, child, th, grand} {
		if got := w.chain(p); got != "5" {
			t.Fatalf("task %d chain %q, want 5", p, got)
		}
	}
	// Injection: the owner adds a second process.
	b := w.fork(100)
	wantErrno(t, w.set(100, false, true, b, "5"), 0)
	if got := w.chain(b); got != "5" {
		t.Fatalf("injected chain %q", got)
	}
	cs := w.e.Containers()
	if len(cs) != 1 || cs[0].Tasks != 5 || cs[0].Owner.PID != 100 {
		t.Fatalf("containers %+v", cs)
	}
	n := len(w.out.recs)
	for _, p := range []int32{grand, th, child, a} {
		w.exit(p)
	}
	if len(w.out.recs) != n {
		t.Fatalf("dropped while a member lives: %v", w.out.recs[n:])
	}
	w.exit(b)
	if got := fields(w.last()); !strings.HasPrefix(got, fmt.Sprintf("op=drop opid=%d contid=5 old-contid=5 pid=%d", b, b)) {
		t.Fatalf("drop record %q", got)
	}
	if len(w.e.Containers()) != 0 {
		t.Fatal("container still live")
	}
	// The ID is reusable now, by anyone.
	o2 := w.fork(100)
	wantErrno(t, w.set(o2, false, true, w.fork(o2), "5"), 0)
}

func TestNesting(t *testing.T) {
	w := newWorld(t)
	outer := w.fork(100)
	wantErrno(t, w.set(100, false, true, outer, "1"), 0)
	nested := w.fork(outer) // a nested orchestrator, inside 1
	c1 := w.fork(nested)
	c2 := w.fork(nested)
	wantErrno(t, w.set(nested, false, true, c1, "2"), 0)
	if got := w.chain(c1); got != "2,^1" {
		t.Fatalf("nested chain %q", got)
	}
	// Injection into the nested container, and a sibling container.
	wantErrno(t, w.set(nested, false, true, c2, "3"), 0)
	if got := w.chain(c2); got != "3,^1" {
		t.Fatalf("second nested chain %q", got)
	}
	// The nested owner cannot re-set; the outer owner cannot reach in.
	wantErrno(t, w.set(nested, false, true, c1, "4"), unix.EEXIST)
	wantErrno(t, w.set(100, false, true, c1, "4"), unix.EEXIST)
	// 1 stays live while 2 lives, even with no task of its own.
	w.exit(nested)
	w.exit(outer)
	w.exit(c2)
	if ids := len(w.e.Containers()); ids != 2 {
		t.Fatalf("want 1 and 2 live, have %d containers", ids)
	}
	w.exit(c1)
	var drops []string
	for _, r := range w.out.recs {
		if v, _ := r.Get("op"); v == "drop" {
			c, _ := r.Get("old-contid")
			drops = append(drops, c)
		}
	}
	if got := strings.Join(drops, " "); got != "3,^1 2,^1 1" {
		t.Fatalf("drops %q, want 3,^1 2,^1 1", got)
	}
}

func TestMultiThreadedTarget(t *testing.T) {
	w := newWorld(t)
	p := w.fork(100)
	t1 := w.thread(p, p)
	t2 := w.thread(t1, p)
	wantErrno(t, w.set(100, false, true, t2, "8"), 0) // a TID names its group
	for _, tid := range []int32{p, t1, t2} {
		if got := w.chain(tid); got != "8" {
			t.Fatalf("thread %d chain %q", tid, got)
		}
	}
	// The leader exits first; the group lives on and can still be named.
	w.exit(p)
	if got := w.chain(t1); got != "8" {
		t.Fatalf("after leader exit %q", got)
	}
	w.exit(t1)
	w.exit(t2)
	if len(w.e.Containers()) != 0 {
		t.Fatal("not dropped after the last thread")
	}
	if _, ok := w.e.Task(p); ok {
		t.Fatal("leader entry kept after its group ended")
	}
	if ti, _ := w.e.Task(100); ti.TID != 100 {
		t.Fatal("shell lost")
	}
}

func TestCapcontid(t *testing.T) {
	w := newWorld(t)
	orch := w.fork(100)
	cap := func(caller int32, capable bool, target int32, v string) error {
		return w.e.SetCapcontid(SetCapcontid{Time: w.tick(), Caller: w.ref(caller), CallerCap: capable, Target: target, Value: v})
	}
	wantErrno(t, cap(100, true, 4242, "1"), unix.ESRCH)
	wantErrno(t, cap(100, true, orch, "2"), unix.EINVAL)
	wantErrno(t, cap(100, false, orch, "1"), unix.EPERM)
	wantErrno(t, cap(100, true, 100, "1"), unix.EXDEV)
	wantErrno(t, cap(100, true, orch, "1"), 0)
	if got := fields(w.last()); !strings.HasPrefix(got, fmt.Sprintf("opid=%d capcontid=1 old-capcontid=0 pid=100", orch)) {
		t.Fatalf("SET_CAPCONTID %q", got)
	}
	// The unprivileged orchestrator can now register its children, itself
	// or through a helper, but its capcontid is not inherited.
	c := w.fork(orch)
	wantErrno(t, w.set(orch, false, false, c, "11"), 0)
	h := w.fork(orch)
	wantErrno(t, w.set(h, true, false, w.fork(orch), "11"), 0)
	wantErrno(t, w.set(h, false, false, w.fork(h), "12"), unix.EPERM)
}

func TestNamespaces(t *testing.T) {
	w := newWorld(t)
	a := w.fork(100)
	wantErrno(t, w.set(100, false, true, a, "5"), 0)
	b := w.fork(100)
	wantErrno(t, w.set(100, false, true, b, "6"), 0)
	// a unshares a new netns; b joins it with setns.
	var next ns.Set
	next[ns.Net] = newNet
	w.e.NSChange(NSChange{Time: w.tick(), PID: a, Op: Unshare, NS: next})
	w.e.NSChange(NSChange{Time: w.tick(), PID: b, Op: Setns, NS: next})
	got := w.e.NetnsChains(newNet)
	if len(got) != 2 || got[0].String() != "6" || got[1].String() != "5" {
		t.Fatalf("netns containers %v, want newest first [6 5]", got)
	}
	if host := w.e.NetnsChains(hostNet); len(host) != 0 {
		t.Fatalf("host netns still lists %v", host)
	}
	var kinds []string
	for _, r := range w.out.recs {
		switch r.Type {
		case records.NSCreate, records.NSChange, records.NSDestroy:
			kinds = append(kinds, fmt.Sprintf("%d:%s", r.Type, fields(r)))
		}
	}
	want := []string{
		"2904:nstype=net ns=4:4026532200 nsid=30 old-ns=4:4026531840 old-nsid=1 pid=1001 contid=5",
		"2905:nstype=net ns=4:4026532200 nsid=30 old-ns=4:4026531840 old-nsid=1 pid=1001 contid=5",
		"2905:nstype=net ns=4:4026532200 nsid=30 old-ns=4:4026531840 old-nsid=1 pid=1002 contid=6",
	}
	if strings.Join(kinds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ns records:\n%s\nwant:\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
	}
	w.exit(a)
	w.exit(b)
	r := w.out.recs[len(w.out.recs)-2]
	if r.Type != records.NSDestroy || fields(r) != "nstype=net ns=4:4026532200 nsid=30 pid=1002 contid=6" {
		t.Fatalf("want NS_DESTROY before the drop, got %d %s", r.Type, fields(r))
	}
}

func TestForkCreatesNamespace(t *testing.T) {
	w := newWorld(t)
	c := w.fork(100)
	wantErrno(t, w.set(100, false, true, c, "5"), 0)
	var next ns.Set
	next[ns.PID] = ns.ID{Dev: 4, Ino: 4026532300}
	w.next++
	w.e.Fork(Fork{Time: w.tick(), Parent: c, Child: w.next, ChildTGID: w.next, Start: 5, NS: next})
	r := w.last()
	if r.Type != records.NSCreate || fields(r) != "nstype=pid ns=4:4026532300 old-ns=? pid="+itoa(c)+" contid=5" {
		t.Fatalf("got %d %s", r.Type, fields(r))
	}
	// A second child in the same new namespace creates nothing.
	n := len(w.out.recs)
	w.e.Fork(Fork{Time: w.tick(), Parent: w.next, Child: w.next + 1, ChildTGID: w.next + 1, Start: 6})
	if len(w.out.recs) != n {
		t.Fatal("inherited namespace logged as created")
	}
}

// nsRecords returns the NS_* records written since record n.
func (w *world) nsRecords(n int) []string {
	var got []string
	for _, r := range w.out.recs[n:] {
		switch r.Type {
		case records.NSCreate, records.NSChange, records.NSDestroy:
			got = append(got, fmt.Sprintf("%d:%s", r.Type, fields(r)))
		}
	}
	return got
}

// TestNamespaceRecordsNeedAContainer checks spec §5.1's scope: namespace
// records are written where a container is involved, and a namespace only
// uncontained tasks use writes none, even while a container shares the
// host's namespaces (which makes those a container's too).
func TestNamespaceRecordsNeedAContainer(t *testing.T) {
	ctrNet := ns.ID{Dev: 4, Ino: 4026532500, Unique: 50}
	userNet := ns.ID{Dev: 4, Ino: 4026532600, Unique: 60}
	netSet := func(id ns.ID) ns.Set { var s ns.Set; s[ns.Net] = id; return s }
	type step func(w *world, host, ctr int32) int32 // returns the task to check
	tests := []struct {
		name string
		run  step
		want []string
	}{
		{"host unshare and fork into a new namespace", func(w *world, host, _ int32) int32 {
			// The host's mnt namespace is container 5's too: leaving it is
			// not written either.
			s := netSet(userNet)
			s[ns.Mnt] = ns.ID{Dev: 4, Ino: 4026532800, Unique: 80}
			w.e.NSChange(NSChange{Time: w.tick(), PID: host, Op: Unshare, NS: s})
			k := w.fork(host)
			w.e.Fork(Fork{Time: w.tick(), Parent: k, Child: 3000, ChildTGID: 3000, Start: 3000, HasCloneFlags: true,
				CloneFlags: unix.CLONE_NEWNET, NS: netSet(ns.ID{Dev: 4, Ino: 4026532700, Unique: 70})})
			w.exit(3000)
			w.exit(k)
			w.exit(host)
			return 0
		}, nil},
		{"host setns into a container's netns and back", func(w *world, host, _ int32) int32 {
			w.e.NSChange(NSChange{Time: w.tick(), PID: host, Op: Setns, NS: netSet(ctrNet)})
			w.e.NSChange(NSChange{Time: w.tick(), PID: host, Op: Unshare, NS: netSet(userNet)})
			w.exit(host)
			return 0
		}, []string{
			"2905:nstype=net ns=4:4026532500 nsid=50 old-ns=4:4026531840 old-nsid=1 pid=1001 contid=-1",
			"2904:nstype=net ns=4:4026532600 nsid=60 old-ns=4:4026532500 old-nsid=50 pid=1001 contid=-1",
			"2905:nstype=net ns=4:4026532600 nsid=60 old-ns=4:4026532500 old-nsid=50 pid=1001 contid=-1",
			"2906:nstype=net ns=4:4026532600 nsid=60 pid=1001 contid=-1",
		}},
		{"a child of a host process in a container's netns", func(w *world, host, _ int32) int32 {
			w.e.NSChange(NSChange{Time: w.tick(), PID: host, Op: Setns, NS: netSet(ctrNet)})
			k := w.fork(host)
			w.e.NSChange(NSChange{Time: w.tick(), PID: k, Op: Setns, NS: netSet(hostNet)})
			return 0
		}, []string{
			"2905:nstype=net ns=4:4026532500 nsid=50 old-ns=4:4026531840 old-nsid=1 pid=1001 contid=-1",
			"2905:nstype=net ns=4:4026531840 nsid=1 old-ns=4:4026532500 old-nsid=50 pid=1003 contid=-1",
		}},
		{"contained unshare", func(w *world, _, ctr int32) int32 {
			w.e.NSChange(NSChange{Time: w.tick(), PID: ctr, Op: Unshare, NS: netSet(userNet)})
			return 0
		}, []string{
			"2904:nstype=net ns=4:4026532600 nsid=60 old-ns=4:4026532500 old-nsid=50 pid=1002 contid=5",
			"2905:nstype=net ns=4:4026532600 nsid=60 old-ns=4:4026532500 old-nsid=50 pid=1002 contid=5",
			"2906:nstype=net ns=4:4026532500 nsid=50 pid=1002 contid=5",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			host := w.fork(100) // 1001, uncontained
			// 1002: container 5 in its own netns, sharing the host's mnt.
			w.next++
			ctr := w.next
			w.e.Fork(Fork{Time: w.tick(), Parent: 100, Child: ctr, ChildTGID: ctr, Start: uint64(w.now), NS: netSet(ctrNet)})
			wantErrno(t, w.set(100, false, true, ctr, "5"), 0)
			n := len(w.out.recs)
			tt.run(w, host, ctr)
			if got := w.nsRecords(n); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("ns records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestPidReuseNeverInheritsOldIdentity(t *testing.T) {
	w := newWorld(t)
	o := w.fork(100)
	c := w.fork(o)
	wantErrno(t, w.set(o, false, true, c, "5"), 0)
	// o exits unseen (missed exit) and its pid is reused by a new process.
	w.e.Fork(Fork{Time: w.tick(), Parent: 100, Child: o, ChildTGID: o, Start: 999})
	if w.e.Stats().Evicted != 1 {
		t.Fatal("eviction not counted")
	}
	// The new o is not the owner: it cannot inject into 5.
	wantErrno(t, w.set(o, false, true, w.fork(o), "5"), unix.ENOTUNIQ)
	if got := w.chain(o); got != "-1" {
		t.Fatalf("reused pid got chain %q", got)
	}
}

func TestUnknownInputsAreCounted(t *testing.T) {
	w := newWorld(t)
	w.e.Exit(Exit{Time: w.tick(), PID: 31000})
	w.e.Fork(Fork{Time: w.tick(), Parent: 31001, Child: 31002, ChildTGID: 31002, HasContid: true, Contid: 42})
	st := w.e.Stats()
	if st.UnknownExit != 1 || st.UnknownParent != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got := w.chain(31002); got != "42" {
		t.Fatalf("kernel's contid not used for an orphan fork: %q", got)
	}
	var id contid.ID = 42
	if cs := w.e.Containers(); len(cs) != 1 || cs[0].Chain[0] != id {
		t.Fatalf("containers %+v", cs)
	}
}

// fakeKernel records what the engine asks of the kernel.
type fakeKernel struct {
	refuse error
	tagged map[int32]contid.ID
	starts []uint64 // the start time each Tag was asked to check
	kept   []contid.ID
	forgot []contid.ID
}

func (k *fakeKernel) Tag(target TaskRef, id contid.ID) error {
	tgid := target.PID
	if k.refuse != nil {
		return k.refuse
	}
	k.tagged[tgid] = id
	k.starts = append(k.starts, target.Start)
	return nil
}
func (k *fakeKernel) Keep(c ContainerInfo) error { k.kept = append(k.kept, c.Chain[0]); return nil }
func (k *fakeKernel) Forget(id contid.ID) error  { k.forgot = append(k.forgot, id); return nil }

func TestKernelCommit(t *testing.T) {
	w := newWorld(t)
	k := &fakeKernel{tagged: map[int32]contid.ID{}}
	w.e.kernel = k
	a := w.fork(100)
	wantErrno(t, w.set(100, false, true, a, "5"), 0)
	if k.tagged[a] != 5 || len(k.kept) != 1 || k.kept[0] != 5 {
		t.Fatalf("kernel saw tagged=%v kept=%v", k.tagged, k.kept)
	}
	// The kernel checks the start time the engine checked, never a bare pid.
	if want := w.ref(a).Start; len(k.starts) != 1 || want == 0 || k.starts[0] != want {
		t.Fatalf("Tag asked to check start %v, want [%d]", k.starts, want)
	}
	// A refused check never reaches the kernel.
	wantErrno(t, w.set(100, false, true, a, "6"), unix.EEXIST)
	if len(k.tagged) != 1 {
		t.Fatal("a refused request was tagged")
	}
	// The kernel refusing (the target exited meanwhile) changes nothing and is logged.
	k.refuse = fmt.Errorf("tracker: tag 1002: %w", unix.ESRCH)
	b := w.fork(100)
	wantErrno(t, w.set(100, false, true, b, "7"), unix.ESRCH)
	if w.chain(b) != "-1" || len(w.e.Containers()) != 1 {
		t.Fatalf("state changed after a kernel refusal: chain %s, %d containers", w.chain(b), len(w.e.Containers()))
	}
	if got := fields(w.last()); !strings.HasSuffix(got, "res=failed errno=ESRCH") {
		t.Fatalf("kernel refusal logged as %q", got)
	}
	w.exit(a)
	if len(k.forgot) != 1 || k.forgot[0] != 5 {
		t.Fatalf("drop not forgotten: %v", k.forgot)
	}
}

func TestThreadExecTakesOverLeader(t *testing.T) {
	w := newWorld(t)
	p := w.fork(100)
	wantErrno(t, w.set(100, false, true, p, "9"), 0)
	th := w.thread(p, p)
	// th execs: the kernel reports the leader's exit, then the exec with
	// th's old tid; th now has the leader's tid.
	w.exit(p)
	w.e.Exec(Exec{Time: w.tick(), PID: p, OldTID: th, Comm: "sh"})
	if _, ok := w.e.Task(th); ok {
		t.Fatal("old tid still tracked")
	}
	if got := w.chain(p); got != "9" {
		t.Fatalf("leader chain %q after takeover", got)
	}
	n := len(w.out.recs)
	w.exit(p)
	if len(w.out.recs) != n+1 || fields(w.last())[:7] != "op=drop" {
		t.Fatalf("want exactly a drop at the group's end, got %v", w.out.recs[n:])
	}
	if _, ok := w.e.Task(p); ok {
		t.Fatal("group not removed")
	}
}

// TestCloneParent: runc's nsexec makes the container's init with
// CLONE_PARENT through short-lived intermediates; the init is runc's child,
// so runc (the orchestrator) can register it.
func TestCloneParent(t *testing.T) {
	w := newWorld(t)
	runc := w.fork(100)
	stage0 := w.fork(runc)
	w.next++
	stage1 := w.next
	w.e.Fork(Fork{Time: w.tick(), Parent: stage0, Child: stage1, ChildTGID: stage1, Start: 1, CloneParent: true})
	w.next++
	init := w.next
	w.e.Fork(Fork{Time: w.tick(), Parent: stage1, Child: init, ChildTGID: init, Start: 2, CloneParent: true})
	w.exit(stage1)
	w.exit(stage0)
	if ti, _ := w.e.Task(init); ti.PPID != runc {
		t.Fatalf("init's parent %d, want runc %d", ti.PPID, runc)
	}
	wantErrno(t, w.set(runc, false, true, init, "5"), 0)
}

// TestStaleNamespaceCaughtUpAtFork: a child forked into a new net namespace
// without CLONE_NEWNET shows its creator unshared it, though the creator's
// own event has not arrived: the creator's change is applied first
// (NS_CREATE, NS_CHANGE), the fork creates nothing, and the late event
// changes nothing.
func TestStaleNamespaceCaughtUpAtFork(t *testing.T) {
	w := newWorld(t)
	a := w.fork(100)
	wantErrno(t, w.set(100, false, true, a, "5"), 0)
	var set ns.Set
	set[ns.Net] = newNet
	n := len(w.out.recs)
	w.next++
	w.e.Fork(Fork{Time: w.tick(), Parent: a, Child: w.next, ChildTGID: w.next, Start: 1, NS: set, HasCloneFlags: true, CloneFlags: uint64(unix.SIGCHLD)})
	var kinds []string
	for _, r := range w.out.recs[n:] {
		p, _ := r.Get("pid")
		kinds = append(kinds, fmt.Sprintf("%d:%s", r.Type, p))
	}
	if got := strings.Join(kinds, " "); got != fmt.Sprintf("2904:%d 2905:%d", a, a) {
		t.Fatalf("records %s", got)
	}
	if w.e.Stats().StaleNS != 1 {
		t.Fatal("not counted")
	}
	n = len(w.out.recs)
	w.e.NSChange(NSChange{Time: w.tick(), PID: a, Op: Unshare, NS: set}) // the late event
	if len(w.out.recs) != n {
		t.Fatal("the late unshare event wrote records again")
	}
	// With CLONE_NEWNET the namespace is the child's own: NS_CREATE by the creator.
	var other ns.Set
	other[ns.Net] = ns.ID{Dev: 4, Ino: 4026532999}
	w.next++
	w.e.Fork(Fork{Time: w.tick(), Parent: a, Child: w.next, ChildTGID: w.next, Start: 2, NS: other, HasCloneFlags: true, CloneFlags: unix.CLONE_NEWNET})
	if w.e.Stats().StaleNS != 1 || w.last().Type != records.NSCreate {
		t.Fatalf("a clone with CLONE_NEWNET taken as stale: %d", w.e.Stats().StaleNS)
	}
}

// TestOwnerQuota: an orchestrator registering on the strength of capcontid
// owns at most MaxPerOwner live containers; one more is EDQUOT, written
// and counted. Joining a container it owns is not a new one; a drop frees
// a place; a caller with CAP_AUDIT_CONTROL is not bounded.
func TestOwnerQuota(t *testing.T) {
	w := newWorld(t)
	w.e.max = 2
	orch := w.fork(100)
	if err := w.e.SetCapcontid(SetCapcontid{Time: w.tick(), Caller: w.ref(100), CallerCap: true, Target: orch, Value: "1"}); err != nil {
		t.Fatal(err)
	}
	a, b := w.fork(orch), w.fork(orch)
	wantErrno(t, w.set(orch, false, false, a, "21"), 0)
	wantErrno(t, w.set(orch, false, false, b, "22"), 0)
	c := w.fork(orch)
	wantErrno(t, w.set(orch, false, false, c, "23"), unix.EDQUOT)
	if got := fields(w.lastOp()); !strings.HasSuffix(got, "res=failed errno=EDQUOT") || !strings.HasPrefix(got, "op=set opid="+itoa(c)+" contid=23 ") {
		t.Fatalf("refusal written as %q", got)
	}
	if w.chain(c) != "-1" || w.e.Stats().QuotaRefused != 1 {
		t.Fatalf("chain %s, stats %+v", w.chain(c), w.e.Stats())
	}
	// Through a helper acting for it: the same owner, the same bound.
	h := w.fork(orch)
	wantErrno(t, w.set(h, true, false, c, "23"), unix.EDQUOT)
	// Injection into a container it owns creates none.
	wantErrno(t, w.set(orch, false, false, c, "21"), 0)
	// A drop frees a place.
	w.exit(b)
	d := w.fork(orch)
	wantErrno(t, w.set(orch, false, false, d, "24"), 0)
	// CAP_AUDIT_CONTROL is not bounded: root's shell owns 3.
	for i := range 3 {
		wantErrno(t, w.set(100, false, true, w.fork(100), strconv.Itoa(30+i)), 0)
	}
}

// TestJoinOutlivesItsProcess: `runc exec` moves its helper into the
// container's cgroup (the kernel tags it), and the helper execs, forks the
// command's child and exits before the daemon applies the move. Tagging its
// threads then finds it gone; the join is still a fact and the child,
// forked after the move, is in the container. A move the kernel did not tag
// (the process had a contid of its own) that the kernel then refuses
// changes nothing.
func TestJoinOutlivesItsProcess(t *testing.T) {
	w := newWorld(t)
	k := &fakeKernel{tagged: map[int32]contid.ID{}}
	w.e.kernel = k
	init := w.fork(100)
	wantErrno(t, w.set(100, false, true, init, "5"), 0)

	runc := w.fork(100)
	helper := w.fork(runc)
	k.refuse = fmt.Errorf("tracker: tag %d: %w", helper, unix.ESRCH)
	if err := w.e.Join(Join{Time: w.tick(), PID: helper, Contid: 5, Mover: runc, Tagged: true}); err != nil {
		t.Fatalf("a join the kernel made, refused: %v", err)
	}
	if got := fields(w.lastOp()); !strings.HasPrefix(got, "op=join") || !strings.HasSuffix(got, "res=success") {
		t.Fatalf("join logged as %q", got)
	}
	child := w.fork(helper)
	w.exit(helper)
	if got := w.chain(child); got != "5" {
		t.Fatalf("the helper's child has chain %q, want 5", got)
	}

	other := w.fork(runc)
	if err := w.e.Join(Join{Time: w.tick(), PID: other, Contid: 5, Mover: runc, Tagged: false}); err == nil {
		t.Fatal("an untagged join the kernel refused was accepted")
	}
	if got := w.chain(other); got != "-1" {
		t.Fatalf("refused join left chain %q", got)
	}
}
