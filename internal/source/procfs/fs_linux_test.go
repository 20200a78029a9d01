package procfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeTask writes a task's files under dir (a fake /proc, or a process's
// task directory): stat with the given state and start time, status, comm,
// and the files in extra.
func fakeTask(t *testing.T, dir string, pid, tgid, ppid int, state string, start uint64, comm string, extra map[string]string) {
	t.Helper()
	d := filepath.Join(dir, strconv.Itoa(pid))
	files := map[string]string{
		"stat": strconv.Itoa(pid) + " (" + comm + ") " + state + " " + strconv.Itoa(ppid) +
			" 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " + strconv.FormatUint(start, 10) + " 0 0\n",
		"status": "Name:\t" + comm + "\nTgid:\t" + strconv.Itoa(tgid) + "\nPid:\t" + strconv.Itoa(pid) + "\nPPid:\t" + strconv.Itoa(ppid) +
			"\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nCapEff:\t0000000000000000\nNSpid:\t" + strconv.Itoa(pid) + "\n",
		"comm": comm + "\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, body := range files {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFakeTree: every reader reads the tree its FS names, and a task that
// is not there is ESRCH.
func TestFakeTree(t *testing.T) {
	root := t.TempDir()
	fs := FS(root)
	fakeTask(t, root, 100, 100, 1, "S", 500, "sh (1)", map[string]string{"loginuid": "1000", "sessionid": "4\n"})
	fakeTask(t, root, 200, 200, 100, "Z", 900, "gone", nil)
	if err := os.Symlink("/bin/sh", filepath.Join(root, "100", "exe")); err != nil {
		t.Fatal(err)
	}
	if st, err := fs.Stat(100); err != nil || st.Comm != "sh (1)" || st.StartTime != 500 || st.PPID != 1 {
		t.Fatalf("Stat: %+v, %v", st, err)
	}
	if s, err := fs.Status(100); err != nil || s.TGID != 100 || s.UID[0] != 1000 || s.GID[0] != 100 {
		t.Fatalf("Status: %+v, %v", s, err)
	}
	if c, err := fs.Comm(100); err != nil || c != "sh (1)" {
		t.Fatalf("Comm: %q, %v", c, err)
	}
	if e, err := fs.Exe(100); err != nil || e != "/bin/sh" {
		t.Fatalf("Exe: %q, %v", e, err)
	}
	if !fs.Alive(100) || fs.Alive(200) || fs.Alive(300) {
		t.Fatal("Alive: want 100 only (200 is a zombie, 300 is not there)")
	}
	for name, err := range map[string]error{
		"Stat":     func() error { _, err := fs.Stat(300); return err }(),
		"Status":   func() error { _, err := fs.Status(300); return err }(),
		"Exe":      func() error { _, err := fs.Exe(300); return err }(),
		"Threads":  func() error { _, err := fs.Threads(300); return err }(),
		"Identity": func() error { _, err := fs.Identity(300); return err }(),
		"ReadInto": func() error { _, err := fs.ReadInto(make([]byte, 64), 300, "stat"); return err }(),
	} {
		if !errors.Is(err, unix.ESRCH) {
			t.Errorf("%s of a missing task: %v, want ESRCH", name, err)
		}
	}
	if b, err := fs.ReadInto(make([]byte, 4), 100, "comm"); err != nil || string(b) != "sh (" {
		t.Fatalf("ReadInto cut to its buffer: %q, %v", b, err)
	}
	// Identity: the exe's inode, the start time and the auxv bytes.
	if err := os.WriteFile(filepath.Join(root, "100", "auxv"), []byte("0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sh syscall.Stat_t
	if err := syscall.Stat("/bin/sh", &sh); err != nil {
		t.Fatal(err)
	}
	if id, err := fs.Identity(100); err != nil || id.Start != 500 || id.ExeIno != sh.Ino || id.ExeDev != sh.Dev || id.Auxv != "0123456789abcdef" {
		t.Fatalf("Identity: %+v, %v", id, err)
	}
	if _, err := fs.Identity(200); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("Identity of a task without exe (a zombie): %v, want ESRCH", err)
	}
}

// TestScanFakeTree: leaders and threads, sorted by start time with
// leaders first, unset ids where loginuid and sessionid are missing, and
// a task whose files cannot be parsed counted as vanished.
func TestScanFakeTree(t *testing.T) {
	root := t.TempDir()
	fs := FS(root)
	fakeTask(t, root, 100, 100, 1, "S", 500, "sh", map[string]string{"loginuid": "1000", "sessionid": "4"})
	fakeTask(t, filepath.Join(root, "100", "task"), 100, 100, 1, "S", 500, "sh", nil)
	fakeTask(t, filepath.Join(root, "100", "task"), 101, 100, 1, "S", 500, "worker", map[string]string{"loginuid": "1000"})
	fakeTask(t, root, 7, 7, 0, "S", 10, "init", nil)
	fakeTask(t, root, 300, 300, 100, "R", 800, "broken", map[string]string{"stat": "300 (broken"})
	os.MkdirAll(filepath.Join(root, "self"), 0o755) // not a pid: skipped
	os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644)
	tasks, st, err := fs.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks != 3 || st.Vanished != 1 || st.NoNS != 3 {
		t.Fatalf("stats %+v", st)
	}
	const unset = 4294967295
	want := []Task{
		{PID: 7, TGID: 7, PPID: 0, Start: 10, UID: 1000, AUID: unset, Ses: unset, Comm: "init"},
		{PID: 100, TGID: 100, PPID: 1, Start: 500, UID: 1000, AUID: 1000, Ses: 4, Comm: "sh"},
		{PID: 101, TGID: 100, PPID: 0, Start: 500, UID: 1000, AUID: 1000, Ses: unset, Comm: "worker"},
	}
	if len(tasks) != len(want) {
		t.Fatalf("got %d tasks: %+v", len(tasks), tasks)
	}
	for i := range want {
		if tasks[i] != want[i] {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, tasks[i], want[i])
		}
	}
}
