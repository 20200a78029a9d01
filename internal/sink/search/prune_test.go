package search

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestPruneWhileRenamed: logrotate renames the logs while the daemon
// prunes the sidecars of logs that are gone (it does at every rotation).
// A log that is only being renamed is not gone: its sidecar must stay.
func TestPruneWhileRenamed(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	var want []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("audit.log.%d", i))
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sidecarName(fileID(fi)))
	}
	d, err := openIndexDir(filepath.Join(dir, "audit.log"), true)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, name := range want {
		if err := os.WriteFile(filepath.Join(d.Name(), name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Rename the logs round and round, one name at a time, as logrotate
	// shifts them, until the prunes are done.
	var stop atomic.Bool
	renamed := make(chan int)
	go func() {
		count := 0
		defer func() { renamed <- count }()
		for k := 0; !stop.Load(); k++ {
			for i := n - 1; i >= 0; i-- {
				from := filepath.Join(dir, fmt.Sprintf("audit.log.%d", (i+k)%n))
				to := filepath.Join(dir, fmt.Sprintf("audit.log.%d.tmp", (i+k)%n))
				if err := os.Rename(from, to); err != nil {
					t.Error(err)
					return
				}
				if err := os.Rename(to, from); err != nil {
					t.Error(err)
					return
				}
				count += 2
			}
		}
	}()
	log := filepath.Join(dir, "audit.log")
	for range 2000 {
		pruneSidecars(log)
	}
	stop.Store(true)
	if count := <-renamed; count == 0 {
		t.Fatal("no log was renamed while pruning")
	}
	for _, name := range want {
		if _, err := os.Stat(filepath.Join(d.Name(), name)); err != nil {
			t.Fatalf("the sidecar of a log being renamed was pruned: %v", err)
		}
	}

	// A log that is gone loses its sidecar.
	if err := os.Remove(filepath.Join(dir, "audit.log.0")); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "a prune in a quiet log directory", func() bool { return pruneSidecars(log) })
	left, _ := filepath.Glob(filepath.Join(d.Name(), "*.idx"))
	if len(left) != n-1 {
		t.Fatalf("after a log was removed, %d sidecars are left, want %d", len(left), n-1)
	}
}

// TestLogIndexPrunes: a log is removed (the writer's rotation drops the
// oldest, or the administrator does); once the directory is quiet, the
// LogIndex's next Sync after a rotation removes that log's sidecar and
// keeps those of the logs left.
func TestLogIndexPrunes(t *testing.T) {
	info := mustGenLogs(t, genConfig{Dir: t.TempDir(), Containers: 5, Bytes: 300 << 10, Start: 1795687200, Span: 3600, Seed: 7})
	dir := t.TempDir()
	old := filepath.Join(dir, "audit.log.9")
	if err := os.WriteFile(old, []byte("type=DAEMON_START msg=audit(1795687100.000:1): op=start\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := NewIndexWriter(old, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(old)
	if err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, IndexDirName, sidecarName(fileID(fi)))
	// Held open, the removed log keeps its inode: no new log can take the
	// name of its sidecar.
	hold, err := os.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if err := os.Remove(old); err != nil {
		t.Fatal(err)
	}

	lf := newLogFeed(t, 1, info)
	lf.open(auditlog.Config{Path: filepath.Join(dir, "audit.log"), MaxBytes: 40 << 10, NumLogs: 3, MaxAction: auditlog.Rotate, Flush: auditlog.FlushIncrementalAsync})
	for lf.write(200) {
	}
	if err := lf.w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gone); err != nil {
		t.Fatalf("the removed log's sidecar was pruned before a Sync: %v", err)
	}
	quiet := quietFor
	quietFor = 0 // nothing renames here
	defer func() { quietFor = quiet }()
	if err := lf.x.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gone); err == nil {
		t.Fatal("the removed log's sidecar is still there after the prune")
	}
	files, _ := Files(dir)
	if st := checkLogs(t, rand.New(rand.NewSource(8)), info, dir, 5); st.Indexed != len(files) {
		t.Fatalf("sidecars used for %d of %d logs after the prune", st.Indexed, len(files))
	}
}
