package procfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPidfdIDs: a pidfd of this process's leader and one of another of
// its threads both name this thread group; once a process is reaped, its
// pidfd gives ESRCH.
func TestPidfdIDs(t *testing.T) {
	me := os.Getpid()
	tids, err := Host.Threads(int32(me))
	if err != nil || len(tids) < 2 {
		t.Fatalf("threads of this process: %v, %v", tids, err)
	}
	for _, tid := range tids {
		fd, err := OpenThread(int(tid))
		if err != nil {
			t.Fatal(err)
		}
		gotTid, gotTgid, err := PidfdIDs(fd)
		unix.Close(fd)
		if err != nil || gotTid != int(tid) || gotTgid != me {
			t.Errorf("thread %d: PidfdIDs = %d, %d, %v; want %d, %d", tid, gotTid, gotTgid, err, tid, me)
		}
	}
	fd := reapedChild(t)
	defer unix.Close(fd)
	if _, err := PidfdTgid(fd); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("PidfdTgid of a reaped process: %v, want ESRCH", err)
	}
}

// TestCheckStart: the start time of the pidfd's process passes; any other
// (what a pid reused since the caller's check has) is ESRCH, and so is a
// process that is gone.
func TestCheckStart(t *testing.T) {
	st, err := Host.Stat(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := OpenThread(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := CheckStart(fd, st.StartTime); err != nil {
		t.Fatalf("own start time: %v", err)
	}
	if err := CheckStart(fd, st.StartTime+1); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("another start time: %v, want ESRCH", err)
	}
	gone := reapedChild(t)
	defer unix.Close(gone)
	if err := CheckStart(gone, st.StartTime); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("a reaped process: %v, want ESRCH", err)
	}
}

// reapedChild returns a pidfd of a child that has exited and been reaped.
func reapedChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return fd
}

// TestFdinfoPid: the fallback before Linux 6.13 reads the pid of a live
// pidfd's task and refuses an exited one.
func TestFdinfoPid(t *testing.T) {
	fd, err := OpenThread(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if v, err := fdinfoPid(fd); err != nil || v != os.Getpid() {
		t.Fatalf("fdinfoPid = %d, %v; want %d", v, err, os.Getpid())
	}
	gone := reapedChild(t)
	defer unix.Close(gone)
	if v, err := fdinfoPid(gone); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("fdinfoPid of a reaped process = %d, %v; want ESRCH", v, err)
	}
}

// TestExeOf: the executable of a live process that started when the
// caller says; ESRCH for another start (what a reused pid looks like) and
// for a process that is gone; start 0 reads the link alone.
func TestExeOf(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(sleep)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sleep, "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	st, err := Host.Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if exe, err := Host.ExeOf(pid, st.StartTime); err != nil || exe != want {
		t.Errorf("ExeOf(live, its start) = %q, %v; want %q", exe, err, want)
	}
	if exe, err := Host.ExeOf(pid, 0); err != nil || exe != want {
		t.Errorf("ExeOf(live, 0) = %q, %v; want %q", exe, err, want)
	}
	if exe, err := Host.ExeOf(pid, st.StartTime+1); !errors.Is(err, unix.ESRCH) {
		t.Errorf("ExeOf(live, another start) = %q, %v; want ESRCH", exe, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if exe, err := Host.ExeOf(pid, st.StartTime); !errors.Is(err, unix.ESRCH) {
		t.Errorf("ExeOf(reaped) = %q, %v; want ESRCH", exe, err)
	}
}
