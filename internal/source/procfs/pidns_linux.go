package procfs

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsfs ioctls (Linux 6.11+) that translate a pid between the caller's pid
// namespace and the one an nsfs descriptor names, atomically in the kernel.
const (
	nsGetPidFromPidNS = 0x8004b706 // _IOR(0xb7, 0x6, int)
	nsGetPidInPidNS   = 0x8004b708 // _IOR(0xb7, 0x8, int)
)

// PidNS is a pid namespace, open. Close it when done.
type PidNS struct {
	fd int
	fs FS // for the fallback
	// fallback: the kernel lacks the translation ioctls; translate from
	// /proc NSpid, for tasks of this very namespace only.
	fallback bool
	dev, ino uint64
}

// ErrNotVisible: the task has no pid in the namespace.
var ErrNotVisible = fmt.Errorf("procfs: no such process in the pid namespace: %w", unix.ESRCH)

// OpenPidNS opens the pid namespace of task pid for translating pids. The
// caller checks that pid still names the task it means after the open.
func (f FS) OpenPidNS(pid int32) (*PidNS, error) {
	fd, err := unix.Open(f.Path(pid, "ns/pid"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("procfs: process %d: pid namespace: %w", pid, unix.ESRCH)
	}
	return &PidNS{fd: fd, fs: f}, nil
}

// Close releases the namespace.
func (n *PidNS) Close() { unix.Close(n.fd) }

func (n *PidNS) ioctl(req uintptr, pid int32) (int32, error) {
	if n.fallback {
		return 0, unix.ENOTTY
	}
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), req, uintptr(pid))
	switch {
	case e == unix.ENOTTY || e == unix.EINVAL:
		// Before 6.11.
		var st syscall.Stat_t
		if err := syscall.Fstat(n.fd, &st); err != nil {
			return 0, fmt.Errorf("procfs: pid namespace: %w", err)
		}
		n.fallback, n.dev, n.ino = true, st.Dev, st.Ino
		return 0, unix.ENOTTY
	case e != 0:
		return 0, ErrNotVisible
	case int32(r) <= 0:
		return 0, ErrNotVisible
	}
	return int32(r), nil
}

// In returns the pid that host task pid (as the daemon sees it) has in the
// namespace, or ErrNotVisible when it has none: the task is neither in the
// namespace nor in one nested in it.
func (n *PidNS) In(pid int32) (int32, error) {
	v, err := n.ioctl(nsGetPidInPidNS, pid)
	if !errors.Is(err, unix.ENOTTY) {
		return v, err
	}
	return n.inFallback(pid)
}

// From returns the host pid of the task the namespace calls pid.
// candidates lists host pids to try where the kernel cannot translate
// (before 6.11): only tasks of the namespace itself are found then.
func (n *PidNS) From(pid int32, candidates func() []int32) (int32, error) {
	v, err := n.ioctl(nsGetPidFromPidNS, pid)
	if !errors.Is(err, unix.ENOTTY) {
		return v, err
	}
	for _, h := range candidates() {
		if got, err := n.inFallback(h); err == nil && got == pid {
			return h, nil
		}
	}
	return 0, ErrNotVisible
}

// inFallback translates from NSpid: a task whose own pid namespace is this
// one has its innermost NSpid here.
func (n *PidNS) inFallback(pid int32) (int32, error) {
	var st syscall.Stat_t
	if syscall.Stat(n.fs.Path(pid, "ns/pid"), &st) != nil || st.Dev != n.dev || st.Ino != n.ino {
		return 0, ErrNotVisible
	}
	s, err := n.fs.Status(pid)
	if err != nil || len(s.NSpid) == 0 {
		return 0, ErrNotVisible
	}
	return s.NSpid[len(s.NSpid)-1], nil
}

// Ident returns the namespace's device and inode.
func (n *PidNS) Ident() (dev, ino uint64) {
	var st syscall.Stat_t
	syscall.Fstat(n.fd, &st)
	return st.Dev, st.Ino
}

// Fallback forces the translation from /proc NSpid, as on kernels before
// 6.11 (for tests).
func (n *PidNS) Fallback() error {
	var st syscall.Stat_t
	if err := syscall.Fstat(n.fd, &st); err != nil {
		return fmt.Errorf("procfs: pid namespace: %w", err)
	}
	n.fallback, n.dev, n.ino = true, st.Dev, st.Ino
	return nil
}
