package procfs

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/contid/contid/internal/ns"
)

// Task is what a scan learns about one task (a process's leader or one of
// its threads).
type Task struct {
	PID, TGID int32
	PPID      int32  // the parent process; 0 for threads other than the leader
	Start     uint64 // ticks since boot
	UID       uint32 // real uid
	// AUID and Ses are loginuid and sessionid; 4294967295 when unset or
	// unreadable, as the kernel writes an unset one.
	AUID, Ses uint32
	Comm, Exe string // Exe "" when unreadable (a kernel thread)
	NS        ns.Set
}

// unsetID is how the kernel writes an unset loginuid or sessionid.
const unsetID = ^uint32(0)

// ScanStats counts what a scan could not read. Processes exit while they
// are scanned: such a task is skipped, and counted.
type ScanStats struct {
	Tasks    int
	Vanished int // exited between listing and reading
	NoNS     int // namespaces unreadable (e.g. PID 1 in some sandboxes)
}

// Scan lists every task, sorted by start time so parents precede children
// and leaders their threads.
func (f FS) Scan() ([]Task, ScanStats, error) {
	var st ScanStats
	ents, err := os.ReadDir(f.root())
	if err != nil {
		return nil, st, fmt.Errorf("procfs: %w", err)
	}
	var out []Task
	for _, ent := range ents {
		pid, err := strconv.ParseInt(ent.Name(), 10, 32)
		if err != nil || pid <= 0 {
			continue
		}
		leader, ok := f.readTask(int32(pid), &st)
		if !ok {
			continue
		}
		out = append(out, leader)
		tids, err := f.Threads(int32(pid))
		if err != nil {
			continue
		}
		threads := FS(f.Path(int32(pid), "task"))
		for _, tid := range tids {
			if tid == int32(pid) {
				continue
			}
			if t, ok := threads.readTask(tid, &st); ok {
				t.TGID, t.PPID = leader.TGID, 0
				out = append(out, t)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Task) int {
		switch {
		case a.Start != b.Start:
			if a.Start < b.Start {
				return -1
			}
			return 1
		case a.PID == a.TGID && b.PID != b.TGID:
			return -1
		case a.PID != a.TGID && b.PID == b.TGID:
			return 1
		}
		return int(a.PID) - int(b.PID)
	})
	st.Tasks = len(out)
	return out, st, nil
}

// readTask reads task tid of f: /proc for a process's leader, the
// process's task directory for its other threads.
func (f FS) readTask(tid int32, st *ScanStats) (Task, bool) {
	s, err := f.Stat(tid)
	if err != nil {
		st.Vanished++
		return Task{}, false
	}
	c, err := f.Status(tid)
	if err != nil {
		st.Vanished++
		return Task{}, false
	}
	t := Task{PID: s.PID, TGID: c.TGID, PPID: s.PPID, Start: s.StartTime, UID: c.UID[0], AUID: unsetID, Ses: unsetID, Comm: s.Comm}
	if b, err := f.ReadFile(tid, "loginuid"); err == nil {
		if v, err := ParseID(b); err == nil {
			t.AUID = v
		}
	}
	if b, err := f.ReadFile(tid, "sessionid"); err == nil {
		if v, err := ParseID(b); err == nil {
			t.Ses = v
		}
	}
	t.Exe, _ = f.Exe(tid)
	var missing bool
	t.NS, missing = f.NS(tid)
	if missing {
		st.NoNS++
	}
	return t, true
}
