package core

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

func TestToInput(t *testing.T) {
	var set ns.Set
	set[ns.Net] = ns.ID{Dev: 4, Ino: 99, Unique: 7}
	// The start the event gives must reach the lookup (a reused pid
	// fails it).
	exe := func(pid int32, start uint64) (string, error) {
		if pid == 11 && start == 300 {
			return "/bin/x", nil
		}
		return "", unix.ESRCH
	}
	const off = 1_000_000_000
	tests := []struct {
		ev   taskevent.Event
		want engine.Input
	}{
		{taskevent.Event{Kind: taskevent.KindFork, Time: 5, TID: 11, TGID: 11, ParentTID: 10, StartBoottime: 2_500_000_000, NS: set, HasContid: true, Contid: 42},
			engine.Fork{Time: off + 5, Parent: 10, Child: 11, ChildTGID: 11, Start: 250, NS: set, HasContid: true, Contid: 42}},
		{taskevent.Event{Kind: taskevent.KindFork, Time: 5, TID: 12, TGID: 10, ParentTID: 10, StartBoottime: 10_000_000},
			engine.Fork{Time: off + 5, Parent: 10, Child: 12, ChildTGID: 10, Start: 1, HasContid: true, Contid: contid.Unset}},
		{taskevent.Event{Kind: taskevent.KindExec, Time: 6, TID: 11, TGID: 11, OldTID: 13, StartBoottime: 3_000_000_000, Comm: "sh", UID: 1, AUID: 2, Ses: 3},
			engine.Exec{Time: off + 6, PID: 11, OldTID: 13, Comm: "sh", Exe: "/bin/x", UID: 1, AUID: 2, Ses: 3, HasCreds: true}},
		{taskevent.Event{Kind: taskevent.KindExec, Time: 6, TID: 11, TGID: 11, StartBoottime: 3_010_000_000, Comm: "sh"},
			engine.Exec{Time: off + 6, PID: 11, Comm: "sh", HasCreds: true}},
		{taskevent.Event{Kind: taskevent.KindExit, Time: 7, TID: 12, TGID: 10}, engine.Exit{Time: off + 7, PID: 12}},
		{taskevent.Event{Kind: taskevent.KindNS, Time: 8, TID: 11, Op: taskevent.NSUnshare, NS: set},
			engine.NSChange{Time: off + 8, PID: 11, Op: engine.Unshare, NS: set}},
		{taskevent.Event{Kind: taskevent.KindNS, Time: 8, TID: 11, Op: taskevent.NSSetns, NS: set},
			engine.NSChange{Time: off + 8, PID: 11, Op: engine.Setns, NS: set}},
		{taskevent.Event{Kind: 99}, nil},
	}
	for _, tt := range tests {
		got := toInput(tt.ev, off, exe)
		if f, ok := got.(engine.Fork); ok {
			w := tt.want.(engine.Fork)
			if f.Time != w.Time || f.Parent != w.Parent || f.Child != w.Child || f.ChildTGID != w.ChildTGID ||
				f.Start != w.Start || f.NS != w.NS || f.HasContid != w.HasContid || f.Contid != w.Contid {
				t.Errorf("%v:\n got %+v\nwant %+v", tt.ev.Kind, f, w)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("%v:\n got %+v\nwant %+v", tt.ev.Kind, got, tt.want)
		}
	}
}

// TestExecOfAGoneProcess: an exec whose process is gone by the time its
// executable is looked up is applied without one.
func TestExecOfAGoneProcess(t *testing.T) {
	gone := func(int32, uint64) (string, error) { return "", unix.ESRCH }
	got := toInput(taskevent.Event{Kind: taskevent.KindExec, Time: 6, TID: 11, TGID: 11, Comm: "sh"}, 0, gone)
	if e, ok := got.(engine.Exec); !ok || e.Exe != "" || e.Comm != "sh" || e.PID != 11 {
		t.Fatalf("got %+v", got)
	}
}

func TestSeedOf(t *testing.T) {
	var set ns.Set
	set[ns.PID] = ns.ID{Dev: 4, Ino: 5}
	task := procfs.Task{PID: 12, TGID: 10, PPID: 0, Start: 250, UID: 1000, AUID: 1001, Ses: 3, Comm: "sh", Exe: "/bin/sh", NS: set}
	const now, boot = 9_000_000_000, 1_000_000_000
	want := engine.SeedTask{Time: now, PID: 12, TGID: 10, Start: 250, Born: boot + 2_500_000_000, NS: set,
		Subject: engine.Subject{UID: 1000, AUID: 1001, Ses: 3, Comm: "sh", Exe: "/bin/sh"}}
	if got := seedOf(task, now, boot); got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
