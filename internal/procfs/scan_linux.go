package procfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/engine"
	"github.com/contid/contid/internal/ns"
)

// ScanStats counts what a scan could not read. Processes exit while they
// are scanned: such a task is skipped, and counted.
type ScanStats struct {
	Tasks    int
	Vanished int // exited between listing and reading
	NoNS     int // namespaces unreadable (e.g. PID 1 in some sandboxes)
}

// Scan lists every task under root (normally "/proc") as engine seeds,
// sorted by start time so parents precede children and leaders their
// threads. The kernel's contid is not read here: the caller adds it.
func Scan(root string) ([]engine.SeedTask, ScanStats, error) {
	var st ScanStats
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, st, fmt.Errorf("procfs: %w", err)
	}
	var out []engine.SeedTask
	for _, ent := range ents {
		pid, err := strconv.ParseInt(ent.Name(), 10, 32)
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(root, ent.Name())
		leader, ok := readTask(dir, &st)
		if !ok {
			continue
		}
		out = append(out, leader)
		tids, err := os.ReadDir(filepath.Join(dir, "task"))
		if err != nil {
			continue
		}
		for _, te := range tids {
			if te.Name() == ent.Name() {
				continue
			}
			if t, ok := readTask(filepath.Join(dir, "task", te.Name()), &st); ok {
				t.TGID, t.PPID = leader.TGID, 0
				out = append(out, t)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b engine.SeedTask) int {
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

func readTask(dir string, st *ScanStats) (engine.SeedTask, bool) {
	var t engine.SeedTask
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		st.Vanished++
		return t, false
	}
	s, err := ParseStat(b)
	if err != nil {
		st.Vanished++
		return t, false
	}
	b, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		st.Vanished++
		return t, false
	}
	c, err := ParseStatus(b)
	if err != nil {
		st.Vanished++
		return t, false
	}
	t.PID, t.TGID, t.PPID, t.Start = s.PID, c.TGID, s.PPID, s.StartTime
	t.Subject = engine.Subject{UID: c.UID, AUID: engine.UnsetID, Ses: engine.UnsetID, Comm: s.Comm}
	if b, err := os.ReadFile(filepath.Join(dir, "loginuid")); err == nil {
		if v, err := ParseID(b); err == nil {
			t.Subject.AUID = v
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sessionid")); err == nil {
		if v, err := ParseID(b); err == nil {
			t.Subject.Ses = v
		}
	}
	t.Subject.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
	var missing bool
	t.NS, missing = ReadNS(filepath.Join(dir, "ns"))
	if missing {
		st.NoNS++
	}
	return t, true
}

// ReadNS reads a task's namespaces from its ns directory: dev:inode from
// stat, and the unique id from ioctl NS_GET_ID where the kernel has it.
// missing reports that some could not be read; they stay zero.
func ReadNS(dir string) (set ns.Set, missing bool) {
	for typ := ns.Type(0); typ < ns.NumTypes; typ++ {
		id, err := ReadNSID(filepath.Join(dir, typ.String()))
		if err != nil {
			missing = true
			continue
		}
		set[typ] = id
	}
	return set, missing
}

// ReadNSID identifies the namespace an nsfs path refers to.
func ReadNSID(path string) (ns.ID, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ns.ID{}, fmt.Errorf("procfs: %w", err)
	}
	defer unix.Close(fd)
	var s unix.Stat_t
	if err := unix.Fstat(fd, &s); err != nil {
		return ns.ID{}, fmt.Errorf("procfs: %w", err)
	}
	id := ns.ID{Dev: uint32(s.Dev), Ino: uint32(s.Ino)}
	var u uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.NS_GET_ID), uintptr(unsafe.Pointer(&u))); errno == 0 {
		id.Unique = u
	}
	return id, nil
}
