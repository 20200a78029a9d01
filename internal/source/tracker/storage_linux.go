package tracker

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/procfs"
)

// SetContidFD sets the contid of the task a pidfd refers to (a process
// pidfd names its leader thread, a PIDFD_THREAD pidfd one thread). Only
// that task's storage changes; tasks it creates afterwards inherit. Use
// SetGroup for a whole thread group. The unset value is refused (EINVAL).
func (t *Tracker) SetContidFD(pidfd int, id contid.ID) error {
	return t.store(pidfd, id, valSet)
}

// SetContid is SetContidFD for a tid. A bare tid can name a different task
// by the time it is used; callers that must be race-free hold a pidfd.
func (t *Tracker) SetContid(tid int, id contid.ID) error {
	fd, err := procfs.OpenThread(tid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return t.SetContidFD(fd, id)
}

func (t *Tracker) store(pidfd int, id contid.ID, flags uint32) error {
	if id == contid.Unset {
		return fmt.Errorf("tracker: set contid: %v is the unset value: %w", uint64(id), unix.EINVAL)
	}
	v := trackerTaskVal{Contid: uint64(id), Flags: flags}
	var err error
	// The kernel occasionally answers EAGAIN (about 1 in 20,000 updates
	// measured on 6.18, with or without concurrent BPF use of the task's
	// storage): a transient failure to get the storage element; retry.
	for try := 0; try < storeTries; try++ {
		err = t.objs.ContidTask.Update(uint32(pidfd), &v, ebpf.UpdateAny)
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
		time.Sleep(time.Duration(try+1) * 50 * time.Microsecond)
	}
	if err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			// The kernel's answer for a pidfd whose task is gone.
			err = unix.ESRCH
		}
		return fmt.Errorf("tracker: set contid through pidfd %d: %w", pidfd, err)
	}
	return nil
}

// ContidFD returns the contid of the task a pidfd refers to; ok is false
// when the task has none.
func (t *Tracker) ContidFD(pidfd int) (id contid.ID, ok bool, err error) {
	if id, ok, err = t.ownContidFD(pidfd); err != nil || ok {
		return id, ok, err
	}
	// A thread without a value of its own has its leader's (task_contid
	// in bpf/tracker.c).
	tid, tgid, err := procfs.PidfdIDs(pidfd)
	if err != nil {
		return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
	}
	if tid == tgid {
		return contid.Unset, false, nil
	}
	leader, err := procfs.OpenThread(tgid)
	if err != nil {
		return contid.Unset, false, err
	}
	defer unix.Close(leader)
	// The thread is still alive and in tgid, so tgid was not reused
	// between PidfdIDs and OpenThread.
	if _, again, err := procfs.PidfdIDs(pidfd); err != nil || again != tgid {
		return contid.Unset, false, fmt.Errorf("tracker: thread group %d changed while reading it: %w", tgid, unix.ESRCH)
	}
	// A zombie leader (it exited first) still answers for its storage.
	return t.ownContidFD(leader)
}

// ownContidFD returns the value that the task pidfd refers to holds itself,
// not its leader's.
func (t *Tracker) ownContidFD(pidfd int) (id contid.ID, ok bool, err error) {
	var v trackerTaskVal
	if err := t.objs.ContidTask.Lookup(uint32(pidfd), &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			// No storage, or no task: the kernel says ENOENT for both.
			if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); errors.Is(err, unix.ESRCH) {
				return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
			}
			return contid.Unset, false, nil
		}
		return contid.Unset, false, fmt.Errorf("tracker: read contid through pidfd %d: %w", pidfd, err)
	}
	if v.Flags&valSet == 0 {
		return contid.Unset, false, nil
	}
	return contid.ID(v.Contid), true, nil
}

// Contid returns the contid of thread tid; ok is false when it has none.
// A tid that does not exist is an error wrapping unix.ESRCH.
func (t *Tracker) Contid(tid int) (id contid.ID, ok bool, err error) {
	fd, err := procfs.OpenThread(tid)
	if err != nil {
		return contid.Unset, false, err
	}
	defer unix.Close(fd)
	return t.ContidFD(fd)
}

// storeTries bounds the retries of a storage update answered with EAGAIN.
const storeTries = 10

// maxGroupPasses bounds SetGroup's re-listing; a group that keeps changing
// its threads for this long is reported, not chased forever.
const maxGroupPasses = 64

// SetGroup gives every thread of the thread group pid belongs to (any tid
// names its group, spec §3) the contid id. See SetGroupFD.
//
// start, when not 0, is the start time of the group's leader that the
// caller checked (clock ticks since boot, /proc/PID/stat field 22): the
// pid is opened as a pidfd first and the process behind it must have that
// start time, so a pid reused since the caller's checks is ESRCH and never
// tagged. The pidfd then pins the process until it is tagged.
func (t *Tracker) SetGroup(pid int, start uint64, id contid.ID) error {
	fd, err := procfs.OpenThread(pid)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if start != 0 {
		if err := procfs.CheckStart(fd, start); err != nil {
			return err
		}
	}
	return t.SetGroupFD(fd, id)
}

// SetGroupFD gives every thread of the thread group of the task pidfd
// refers to the contid id, including threads and child processes created
// while it runs. It is race-free because of the order of its steps:
//
//  1. The group leader's storage gets id with the group flag. From then on
//     the kernel's inheritance program gives id to every task any thread of
//     the group creates, tagged or not yet (it falls back to the leader's
//     value when the creating thread has none).
//  2. Every thread in /proc/TGID/task gets id through its own pidfd. A
//     thread created after step 1 already inherited id; one created before
//     step 1 is in the listing, because threads are listed from the moment
//     they exist until they are reaped.
//  3. The listing is repeated until a pass finds every thread tagged:
//     this catches a non-leader thread that exec'd and took the leader's
//     tid (the leader's value moves with neither).
//
// Each listed tid is checked to belong to the group (PIDFD_GET_INFO, or
// /proc when that ioctl is missing) after its pidfd is open, so a tid reused
// by another process during the walk is never tagged. The leader's flag
// stays; it only matters while some thread of the group has no contid.
func (t *Tracker) SetGroupFD(pidfd int, id contid.ID) error {
	if id == contid.Unset {
		return fmt.Errorf("tracker: set group contid: %v is the unset value: %w", uint64(id), unix.EINVAL)
	}
	tgid, err := procfs.PidfdTgid(pidfd)
	if err != nil {
		return err
	}
	leader, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return fmt.Errorf("tracker: pidfd of thread group %d: %w", tgid, err)
	}
	defer unix.Close(leader)
	// The thread behind pidfd is alive and in group tgid, so tgid was not
	// reused between pidfdTgid and PidfdOpen.
	if again, err := procfs.PidfdTgid(pidfd); err != nil || again != tgid {
		return fmt.Errorf("tracker: thread group %d changed while opening it: %w", tgid, unix.ESRCH)
	}
	if err := t.store(leader, id, valSet|valGroup); err != nil {
		return err
	}
	for pass := 0; pass < maxGroupPasses; pass++ {
		changed, err := t.tagThreads(tgid, id)
		if err != nil {
			return err
		}
		// Still alive: the listing was of this group's tgid.
		if err := unix.PidfdSendSignal(leader, 0, nil, 0); err != nil {
			return fmt.Errorf("tracker: thread group %d: %w", tgid, err)
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("tracker: thread group %d kept changing its threads: %w", tgid, unix.EAGAIN)
}

// tagThreads tags every listed thread of tgid that does not carry id yet and
// reports whether it tagged any.
func (t *Tracker) tagThreads(tgid int, id contid.ID) (bool, error) {
	tids, err := procfs.Host.Threads(int32(tgid))
	if err != nil {
		return false, fmt.Errorf("tracker: list threads: %w", err)
	}
	changed := false
	for _, tid := range tids {
		ok, err := t.tagThread(tgid, int(tid), id)
		if err != nil {
			return false, err
		}
		changed = changed || ok
	}
	return changed, nil
}

func (t *Tracker) tagThread(tgid, tid int, id contid.ID) (bool, error) {
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if errors.Is(err, unix.ESRCH) {
		return false, nil // exited since the listing
	}
	if err != nil {
		return false, fmt.Errorf("tracker: pidfd of thread %d: %w", tid, err)
	}
	defer unix.Close(fd)
	g, err := procfs.PidfdTgid(fd)
	if errors.Is(err, unix.ESRCH) || (err == nil && g != tgid) {
		return false, nil // exited, or the tid now names another process's thread
	}
	if err != nil {
		return false, err
	}
	cur, ok, err := t.ownContidFD(fd)
	if err != nil {
		return false, err
	}
	if ok && cur == id {
		return false, nil
	}
	if err := t.store(fd, id, valSet); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
