package core

import (
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// toInput turns a task event into an engine input. offset maps the
// sources' CLOCK_MONOTONIC times to unix nanoseconds; exe resolves a
// process's executable for exec events (an error, such as the process
// being gone, leaves it empty). Start times become /proc's clock ticks so that tasks seeded
// from /proc and tasks seen at fork compare.
func toInput(ev taskevent.Event, offset int64, exe func(pid int32, start uint64) (string, error)) engine.Input {
	now := int64(ev.Time) + offset
	switch ev.Kind {
	case taskevent.KindFork:
		f := engine.Fork{
			Time: now, Parent: ev.ParentTID, Child: ev.TID, ChildTGID: ev.TGID,
			Start: procfs.TicksFromBoottime(ev.StartBoottime), NS: ev.NS,
			HasContid: true, Contid: contid.Unset,
			CloneParent:   ev.CloneFlags&unix.CLONE_PARENT != 0,
			HasCloneFlags: true, CloneFlags: ev.CloneFlags,
		}
		if ev.HasContid {
			f.Contid = ev.Contid
		}
		return f
	case taskevent.KindExec:
		path, _ := exe(ev.TGID, procfs.TicksFromBoottime(ev.StartBoottime))
		return engine.Exec{
			Time: now, PID: ev.TGID, OldTID: ev.OldTID, Comm: ev.Comm, Exe: path,
			UID: ev.UID, AUID: ev.AUID, Ses: ev.Ses, HasCreds: true, NS: ev.NS,
		}
	case taskevent.KindExit:
		return engine.Exit{Time: now, PID: ev.TID, NS: ev.NS}
	case taskevent.KindJoin:
		return engine.Join{Time: now, PID: ev.TGID, Contid: ev.CgroupContid, Mover: ev.MoverTID, Tagged: ev.Tagged}
	case taskevent.KindNS:
		op := engine.Observed // the periodic scan
		switch ev.Op {
		case taskevent.NSUnshare:
			op = engine.Unshare
		case taskevent.NSSetns:
			op = engine.Setns
		}
		return engine.NSChange{Time: now, PID: ev.TID, Op: op, NS: ev.NS}
	}
	return nil
}

// seedOf turns a task found in /proc at start-up into an engine seed: now
// is the scan's time and boot the boot time, both unix nanoseconds.
func seedOf(t procfs.Task, now, boot int64) engine.SeedTask {
	return engine.SeedTask{
		Time: now, PID: t.PID, TGID: t.TGID, PPID: t.PPID, Start: t.Start,
		Born:    boot + int64(t.Start)*(1e9/procfs.TicksPerSecond),
		NS:      t.NS,
		Subject: engine.Subject{UID: t.UID, AUID: t.AUID, Ses: t.Ses, Comm: t.Comm, Exe: t.Exe},
	}
}
