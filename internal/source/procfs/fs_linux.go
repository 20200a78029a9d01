package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/ns"
)

// FS is a proc filesystem mounted at the directory it names. Host is the
// one this process sees; tests use a fake tree (a directory with PID
// subdirectories holding stat, status and so on). The empty FS is Host.
type FS string

// Host is /proc.
const Host FS = "/proc"

func (f FS) root() string {
	if f == "" {
		return string(Host)
	}
	return string(f)
}

// Path returns the path of file name of task pid ("" names its directory).
// A thread's tid works too, though /proc does not list it.
func (f FS) Path(pid int32, name string) string {
	p := f.root() + "/" + strconv.Itoa(int(pid))
	if name != "" {
		p += "/" + name
	}
	return p
}

// ReadFile reads file name of task pid. A task that is gone gives an
// error wrapping ESRCH (the kernel's ENOENT for its directory).
func (f FS) ReadFile(pid int32, name string) ([]byte, error) {
	b, err := os.ReadFile(f.Path(pid, name))
	if err != nil {
		return nil, gone(pid, err)
	}
	return b, nil
}

// ReadInto reads file name of task pid into buf and returns what it read;
// for callers that read often and keep one buffer. A file longer than buf
// is cut.
func (f FS) ReadInto(buf []byte, pid int32, name string) ([]byte, error) {
	fd, err := unix.Open(f.Path(pid, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, gone(pid, err)
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, gone(pid, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// gone wraps err of reading about pid; a missing file or a read after the
// task died (ESRCH from the kernel) means the task is gone.
func gone(pid int32, err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("procfs: process %d: %w", pid, unix.ESRCH)
	}
	return fmt.Errorf("procfs: process %d: %w", pid, err)
}

// Stat reads /proc/PID/stat.
func (f FS) Stat(pid int32) (Stat, error) {
	b, err := f.ReadFile(pid, "stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// Status reads /proc/PID/status.
func (f FS) Status(pid int32) (Status, error) {
	b, err := f.ReadFile(pid, "status")
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}

// Alive reports whether pid names a task that has not exited (a zombie
// has).
func (f FS) Alive(pid int32) bool {
	st, err := f.Stat(pid)
	return err == nil && !st.Exited()
}

// Comm reads /proc/PID/comm without its newline.
func (f FS) Comm(pid int32) (string, error) {
	b, err := f.ReadFile(pid, "comm")
	if err != nil {
		return "", err
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return string(b), nil
}

// Exe reads the /proc/PID/exe link: the path of the task's executable.
func (f FS) Exe(pid int32) (string, error) {
	s, err := os.Readlink(f.Path(pid, "exe"))
	if err != nil {
		return "", gone(pid, err)
	}
	return s, nil
}

// ExeOf reads the executable of process pid if it is the process that
// started at start (ticks since boot, /proc/PID/stat's starttime), and
// fails with ESRCH if it is gone or pid now names another process (a
// reused pid). The link and the start time are read through one handle on
// /proc/PID, which keeps naming the process it was opened for: after that
// process exits it answers ESRCH, never for the pid's next owner. start 0
// (not known) reads the link alone.
func (f FS) ExeOf(pid int32, start uint64) (string, error) {
	if start == 0 {
		return f.Exe(pid)
	}
	dir, err := unix.Open(f.Path(pid, ""), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", gone(pid, err)
	}
	defer unix.Close(dir)
	var buf [unix.PathMax]byte
	n, err := unix.Readlinkat(dir, "exe", buf[:])
	if err != nil {
		return "", gone(pid, err)
	}
	exe := string(buf[:n])
	fd, err := unix.Openat(dir, "stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", gone(pid, err)
	}
	var sb [1024]byte
	m, err := unix.Read(fd, sb[:])
	unix.Close(fd)
	if err != nil {
		return "", gone(pid, err)
	}
	st, err := ParseStat(sb[:m])
	if err != nil {
		return "", fmt.Errorf("procfs: process %d: %w", pid, err)
	}
	if st.StartTime != start {
		return "", fmt.Errorf("procfs: process %d started at tick %d, not %d: another process under a reused pid: %w", pid, st.StartTime, start, unix.ESRCH)
	}
	return exe, nil
}

// Owner returns the uid and gid the kernel gives /proc/PID: the task's
// effective ids while it is dumpable, root's otherwise.
func (f FS) Owner(pid int32) (uid, gid uint32, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(f.Path(pid, ""), &st); err != nil {
		return 0, 0, gone(pid, err)
	}
	return st.Uid, st.Gid, nil
}

// Threads lists the tids of thread group tgid.
func (f FS) Threads(tgid int32) ([]int32, error) {
	ents, err := os.ReadDir(f.Path(tgid, "task"))
	if err != nil {
		return nil, gone(tgid, err)
	}
	out := make([]int32, 0, len(ents))
	for _, ent := range ents {
		if tid, err := strconv.ParseInt(ent.Name(), 10, 32); err == nil && tid > 0 {
			out = append(out, int32(tid))
		}
	}
	return out, nil
}

// Identity tells one exec image of a process from another: the start time
// (a reused pid is another process), the executable's device and inode,
// and the whole auxiliary vector the kernel built at exec, which holds the
// addresses of the new stack, entry point and vDSO (randomised at every
// exec), AT_SECURE and the uids and gids the image started with.
type Identity struct {
	Start          uint64
	ExeDev, ExeIno uint64
	Auxv           string
}

// Identity reads the exec identity of process pid. A kernel thread or a
// zombie has no exe: it is ESRCH, like a process that is gone.
func (f FS) Identity(pid int32) (Identity, error) {
	var id Identity
	st, err := f.Stat(pid)
	if err != nil {
		return id, err
	}
	id.Start = st.StartTime
	auxv, err := f.ReadFile(pid, "auxv")
	if err != nil {
		return id, err
	}
	id.Auxv = string(auxv)
	var s syscall.Stat_t
	if err := syscall.Stat(f.Path(pid, "exe"), &s); err != nil {
		return id, fmt.Errorf("procfs: process %d: exe: %w", pid, unix.ESRCH)
	}
	id.ExeDev, id.ExeIno = s.Dev, s.Ino
	return id, nil
}

// InitialUserNS reports whether this process runs in the initial user
// namespace (its uid_map is the identity).
func (f FS) InitialUserNS() (bool, error) {
	b, err := os.ReadFile(f.root() + "/self/uid_map")
	if err != nil {
		return false, fmt.Errorf("procfs: %w", err)
	}
	return IsIdentityUIDMap(b), nil
}

// NS reads a task's namespaces (see ReadNSID). missing reports that some
// could not be read; they stay zero.
func (f FS) NS(pid int32) (set ns.Set, missing bool) {
	return readNS(f.Path(pid, "ns"))
}

// NSID identifies namespace typ of task pid.
func (f FS) NSID(pid int32, typ ns.Type) (ns.ID, error) {
	id, err := ReadNSID(f.Path(pid, "ns/"+typ.String()))
	if err != nil {
		return ns.ID{}, gone(pid, err)
	}
	return id, nil
}

// SelfNSID identifies namespace typ of this process.
func (f FS) SelfNSID(typ ns.Type) (ns.ID, error) {
	return ReadNSID(f.root() + "/self/ns/" + typ.String())
}

func readNS(dir string) (set ns.Set, missing bool) {
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

// ReadNSID identifies the namespace an nsfs path refers to: dev:inode from
// stat, and the unique id from ioctl NS_GET_ID where the kernel has it.
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

// Cgroups reads the cgroups of task pid.
func (f FS) Cgroups(pid int32) ([]Cgroup, error) {
	b, err := f.ReadFile(pid, "cgroup")
	if err != nil {
		return nil, err
	}
	return ParseCgroup(b)
}

// CgroupMounts lists the cgroup hierarchies mounted at their roots in
// this process's mount namespace.
func (f FS) CgroupMounts() ([]CgroupMount, error) {
	b, err := os.ReadFile(f.root() + "/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("procfs: %w", err)
	}
	return ParseCgroupMounts(b), nil
}
