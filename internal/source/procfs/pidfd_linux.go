package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pidfds name a task race-free: they keep naming it after it exits, and a
// pid reused since is another task. What /proc says about a pid describes
// the pidfd's task only if that task is still alive and still has the pid
// after the read; the functions here check that.

// OpenThread opens a pidfd for one thread (PIDFD_THREAD, Linux 6.9+; it
// works for leaders too).
func OpenThread(tid int) (int, error) {
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if err != nil {
		return -1, fmt.Errorf("procfs: pidfd of thread %d: %w", tid, err)
	}
	return fd, nil
}

// PidfdTgid returns the thread group of the live task pidfd refers to, or
// an error wrapping ESRCH when it has exited.
func PidfdTgid(pidfd int) (int, error) {
	_, tgid, err := PidfdIDs(pidfd)
	return tgid, err
}

// PidfdIDs returns the tid and the thread group of the live task pidfd
// refers to, or an error wrapping ESRCH when it has exited.
func PidfdIDs(pidfd int) (tid, tgid int, err error) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID}
	err = unix.IoctlPidfdInfo(pidfd, &info)
	if err == nil {
		return int(info.Pid), int(info.Tgid), nil
	}
	if errors.Is(err, unix.ESRCH) {
		return 0, 0, fmt.Errorf("procfs: pidfd %d: %w", pidfd, err)
	}
	if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		return 0, 0, fmt.Errorf("procfs: pidfd %d info: %w", pidfd, err)
	}
	// Before Linux 6.13: the tid from fdinfo, its group from /proc, and
	// the tid again — alive throughout, so /proc described this task.
	if tid, err = fdinfoPid(pidfd); err != nil {
		return 0, 0, err
	}
	st, err := Host.Status(int32(tid))
	if err != nil {
		return 0, 0, err
	}
	if again, err := fdinfoPid(pidfd); err != nil || again != tid {
		return 0, 0, fmt.Errorf("procfs: pidfd %d: %w", pidfd, unix.ESRCH)
	}
	return tid, int(st.TGID), nil
}

// fdinfoPid reads the pid of pidfd's task from this process's fdinfo.
func fdinfoPid(pidfd int) (int, error) {
	b, err := os.ReadFile(string(Host) + "/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, fmt.Errorf("procfs: pidfd %d: %w", pidfd, err)
	}
	v, err := ParseFdinfoPid(b)
	if err != nil {
		return 0, fmt.Errorf("procfs: pidfd %d: %w", pidfd, err)
	}
	if v <= 0 {
		return 0, fmt.Errorf("procfs: pidfd %d: %w", pidfd, unix.ESRCH)
	}
	return v, nil
}

// CheckStart verifies that the thread group of the live task pidfd refers
// to has a leader that started at start (ticks since boot).
func CheckStart(pidfd int, start uint64) error {
	tgid, err := PidfdTgid(pidfd)
	if err != nil {
		return err
	}
	st, err := Host.Stat(int32(tgid))
	if err != nil {
		return fmt.Errorf("procfs: start time of %d: %w", tgid, err)
	}
	// Still alive and in the same group: /proc/TGID described it.
	if again, err := PidfdTgid(pidfd); err != nil || again != tgid {
		return fmt.Errorf("procfs: thread group %d exited while checking it: %w", tgid, unix.ESRCH)
	}
	if st.StartTime != start {
		return fmt.Errorf("procfs: process %d started at tick %d, not %d: it is another process under a reused pid: %w",
			tgid, st.StartTime, start, unix.ESRCH)
	}
	return nil
}

// NSDev returns st_dev of the nsfs entries. Every namespace inode lives on
// the one nsfs superblock, so one stat describes them all.
func NSDev() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(string(Host)+"/self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("procfs: stat nsfs: %w", err)
	}
	return uint32(st.Dev), nil
}
