package search

import (
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/sink/auditlog"
)

// TestLogIndexDiskFull fills a real file system under a log being
// written: while lines wait in the writer's queue the sidecar never
// covers more than the file holds (it stays usable, and searches equal
// the scan), and when space returns the queued lines are indexed as they
// reach the file.
func TestLogIndexDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	info := mustGenLogs(t, genConfig{Dir: t.TempDir(), Containers: 30, Bytes: 1 << 20, Start: 1795687200, Span: 3600, Seed: 7, Interleave: 0.1})
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=512k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s as root: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "audit.log")
	lf := newLogFeed(t, 5, info)
	lf.open(auditlog.Config{Path: path, Flush: auditlog.FlushIncremental, Freq: 20, QueueBytes: 1 << 20})
	rng := rand.New(rand.NewSource(6))
	lf.write(800)
	if err := lf.x.Sync(); err != nil {
		t.Fatal(err)
	}
	// Fill what is left but a little.
	fill := func() {
		var st syscall.Statfs_t
		syscall.Statfs(dir, &st)
		free := int64(st.Bavail) * st.Bsize
		os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, max(0, free-40<<10)), 0o600)
	}
	fill()
	for !lf.w.Stats().DiskFull {
		if !lf.write(50) {
			t.Fatal("the log ended before the disk filled")
		}
		lf.x.Sync() // fails once the disk is full; the old sidecar stays
	}
	lf.write(300) // queued
	lf.x.Sync()
	if q := lf.w.Stats().Queued; q == 0 {
		t.Fatal("no line waits in the queue")
	}
	if st := checkLogs(t, rng, info, dir, 60); st.Indexed != 1 {
		t.Fatalf("with lines queued, the sidecar was not usable (%d files indexed)", st.Indexed)
	}
	os.Remove(filepath.Join(dir, "ballast"))
	if err := lf.w.Retry(); err != nil || lf.w.Stats().DiskFull {
		t.Fatalf("space is back, but the queue was not written: %v", err)
	}
	lf.write(200)
	if err := lf.x.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := lf.w.Close(); err != nil {
		t.Fatal(err)
	}
	st := checkLogs(t, rng, info, dir, 100)
	if st.Indexed != 1 || st.BytesRead > st.Bytes/2 {
		t.Fatalf("after the disk-full episode the sidecar was not used well: %+v", st)
	}
}
