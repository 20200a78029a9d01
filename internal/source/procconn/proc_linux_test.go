package procconn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// TestFill reads a fake /proc: a fork gets its start time, an exec also
// its comm and credentials; a task whose start is after the event (its
// pid was reused) and a task that is gone leave the event as it was.
func TestFill(t *testing.T) {
	root := t.TempDir()
	write := func(pid, name, body string) {
		p := filepath.Join(root, pid, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stat := func(pid, comm, start string) string {
		return pid + " (" + comm + ") S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 " + start + " 0 0\n"
	}
	status := "Tgid:\t50\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nGid:\t1\t1\t1\t1\nCapEff:\t0\n"
	write("50", "stat", stat("50", "sh", "200")) // started at 2 s
	write("50", "status", status)
	write("50", "loginuid", "1000")
	write("50", "sessionid", "3")
	write("60", "stat", stat("60", "new", "100000000000")) // started long after the event
	r := newProcReader(procfs.FS(root))
	const evTime = 5e9 // the event happened at 5 s

	fork := taskevent.Event{Kind: taskevent.KindFork, Time: evTime, TID: 50, TGID: 50, UID: unknownID, AUID: unknownID, Ses: unknownID}
	r.fill(&fork)
	if fork.StartBoottime != 2e9 || fork.Comm != "" || fork.UID != unknownID {
		t.Errorf("fork: %+v", fork)
	}
	exec := taskevent.Event{Kind: taskevent.KindExec, Time: evTime, TID: 50, TGID: 50, UID: unknownID, AUID: unknownID, Ses: unknownID}
	r.fill(&exec)
	if exec.StartBoottime != 2e9 || exec.Comm != "sh" || exec.UID != 1000 || exec.AUID != 1000 || exec.Ses != 3 {
		t.Errorf("exec: %+v", exec)
	}
	for _, ev := range []taskevent.Event{
		{Kind: taskevent.KindExec, Time: evTime, TID: 60, TGID: 60, UID: unknownID, AUID: unknownID, Ses: unknownID}, // reused
		{Kind: taskevent.KindExec, Time: evTime, TID: 70, TGID: 70, UID: unknownID, AUID: unknownID, Ses: unknownID}, // gone
		{Kind: taskevent.KindExit, Time: evTime, TID: 50, TGID: 50, UID: unknownID, AUID: unknownID, Ses: unknownID}, // exits are not filled
	} {
		got := ev
		r.fill(&got)
		if got != ev {
			t.Errorf("event of %d changed:\n got %+v\nwant %+v", ev.TID, got, ev)
		}
	}
}
