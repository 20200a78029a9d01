package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTiny mounts a tmpfs of size bytes on a new directory. It needs
// root, which CI has; a root that cannot mount is a failure, not a skip.
func mountTiny(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs (size %s) on %s as root: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// tinyDisk mounts a tmpfs of size (see mountTiny) and fills it with a
// ballast file of ballast bytes; it returns where the log goes and the
// ballast's path, whose removal brings the space back.
func tinyDisk(t *testing.T, size string, ballast int) (path, ballastPath string) {
	t.Helper()
	dir := mountTiny(t, size)
	ballastPath = filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballastPath, make([]byte, ballast), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "audit.log"), ballastPath
}

// TestDiskFull fills a real 64 KiB file system without a queue
// (QueueBytes < 0): the error is returned with its errno and counted, the
// lines written before stay whole (a line cut off by ENOSPC in mid-write is
// removed), and writing resumes cleanly when space comes back.
func TestDiskFull(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			path, ballast := tinyDisk(t, "64k", 12<<10)
			var logged bytes.Buffer
			w, err := Open(Config{Path: path, Flush: p, Freq: 5, QueueBytes: -1}, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			given, seq := 0, 0
			write := func() error {
				given++
				err := w.WriteLine(testLine(seq))
				if err == nil {
					seq++ // a dropped line is given again, so the log stays gapless
				}
				return err
			}

			for err == nil && given < 10_000 {
				err = write()
			}
			if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrDropped) || !errors.Is(err, ErrDiskFull) {
				t.Fatalf("after %d lines: %v, want ENOSPC, ErrDiskFull and ErrDropped", given, err)
			}
			st := w.Stats()
			if st.WriteErrors == 0 || st.Dropped.DiskFull != 1 || !st.DiskFull {
				t.Errorf("stats after ENOSPC %+v", st)
			}
			checkAccounting(t, w, given)
			// The failing write was cut short at the last free page, and
			// its partial line was cut off (the lines vary in length, so a
			// write that ends exactly at a page end is rare).
			if !strings.Contains(logged.String(), "cut off the partial line") {
				t.Errorf("no partial line cut off; log:\n%s", logged.String())
			}
			onDisk := checkSeqs(t, "full log", readLines(t, path), 0, testLine)
			if p != FlushNone && onDisk != seq {
				t.Errorf("%d lines on disk, %d accepted", onDisk, seq)
			}
			if p == FlushNone && uint64(onDisk) != st.Lines {
				t.Errorf("%d lines on disk, Stats.Lines %d", onDisk, st.Lines)
			}

			// Still full: lines go on failing, and are counted. (Under
			// FlushNone the failed flush wrote part of the buffer, which
			// takes a few more lines before it fails again.)
			err = nil
			for n := 0; err == nil && n < 1000; n++ {
				err = write()
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("on a full disk: %v", err)
			}
			if got := w.Stats().Dropped.DiskFull; got != 2 {
				t.Errorf("Dropped.DiskFull %d, want 2", got)
			}

			// Space comes back.
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			if p == FlushNone {
				// The buffer holds more than fits even now: Flush writes
				// what it can, whole lines only.
				err := w.Flush()
				t.Logf("flush after freeing space: %v (%d still buffered)", err, w.Stats().Buffered)
			} else {
				for range 10 {
					if err := write(); err != nil {
						t.Fatalf("after freeing space: %v", err)
					}
				}
			}
			cerr := w.Close()
			if p != FlushNone && cerr != nil {
				t.Fatal(cerr)
			}
			if p == FlushNone && w.Stats().Buffered != 0 {
				t.Errorf("buffered lines left after Close: %+v", w.Stats())
			}
			checkAccounting(t, w, given)
			onDisk = checkSeqs(t, "log", readLines(t, path), 0, testLine)
			if p != FlushNone && onDisk != seq {
				t.Errorf("%d lines on disk, %d accepted", onDisk, seq)
			}
			if st := w.Stats(); uint64(onDisk) != st.Lines {
				t.Errorf("%d lines on disk, Stats.Lines %d (%+v)", onDisk, st.Lines, st)
			}
			if fi, _ := os.Stat(path); uint64(fi.Size()) != w.Stats().Bytes {
				t.Errorf("file has %d bytes, Stats.Bytes %d", fi.Size(), w.Stats().Bytes)
			}
		})
	}
}

// TestRotationInTinyFileSystem: NumLogs files of MaxBytes fill a 64 KiB
// file system to the last page, and rotation keeps it from overflowing:
// the oldest log is overwritten before the new one is started.
func TestRotationInTinyFileSystem(t *testing.T) {
	dir := mountTiny(t, "64k")
	path := filepath.Join(dir, "audit.log")
	w := mustOpen(t, Config{Path: path, Flush: FlushData, MaxBytes: 20 << 10, NumLogs: 3})
	for seq := range 2000 {
		if err := w.WriteLine(fixedLine(seq)); err != nil {
			t.Fatalf("line %d: %v (%+v)", seq, err, w.Stats())
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := logFiles(t, path)
	next := 2000 - len(readLines(t, path)) - len(readLines(t, path+".1")) - len(readLines(t, path+".2"))
	for _, name := range names {
		next = checkSeqs(t, filepath.Base(name), readLines(t, name), next, fixedLine)
	}
	if next != 2000 {
		t.Errorf("logs end at line %d", next-1)
	}
}

// TestDiskFullQueue fills a real file system with the queue on: lines are
// kept in memory (ErrQueued, not dropped) up to QueueBytes, then dropped
// and counted (ErrDiskFull); when space returns, Retry writes the queue in
// order, and the log holds every line, in order, but exactly those whose
// error said they were dropped.
func TestDiskFullQueue(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			size, room := "64k", 12<<10
			if p == FlushNone {
				size, room = "256k", 160<<10 // room for the buffer in the queue
			}
			path, ballast := tinyDisk(t, size, room)
			var logged bytes.Buffer
			queue := int64(8 << 10)
			if p == FlushNone {
				queue += bufferSize // the buffer joins the queue whatever its bound
			}
			w, err := Open(Config{Path: path, Flush: p, Freq: 5, QueueBytes: queue}, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			seq := 0
			dropped := map[int]bool{}
			write := func() error {
				err := w.WriteLine(testLine(seq))
				if errors.Is(err, ErrDropped) {
					dropped[seq] = true
				}
				seq++
				return err
			}

			for err == nil && seq < 10_000 {
				err = write()
			}
			if !errors.Is(err, ErrQueued) || !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrDropped) {
				t.Fatalf("after %d lines: %v, want ErrQueued with ENOSPC, not ErrDropped", seq, err)
			}
			if st := w.Stats(); !st.DiskFull || st.Queued == 0 || st.Dropped.Total() != 0 {
				t.Fatalf("stats when the disk filled: %+v", st)
			}
			for errors.Is(err, ErrQueued) && seq < 10_000 {
				err = write()
			}
			if !errors.Is(err, ErrDiskFull) || !errors.Is(err, ErrDropped) {
				t.Fatalf("when the queue is full: %v, want ErrDiskFull and ErrDropped", err)
			}
			for range 50 {
				if err := write(); !errors.Is(err, ErrDiskFull) && !errors.Is(err, ErrQueued) {
					t.Fatalf("still full: %v", err)
				}
			}
			// A block waits behind the queue too.
			if err := w.WriteLines(append(testLine(seq), '\n')); errors.Is(err, ErrDropped) {
				dropped[seq] = true
			} else if !errors.Is(err, ErrQueued) {
				t.Fatalf("WriteLines on a full disk: %v", err)
			}
			seq++
			st := w.Stats()
			if st.Queued == 0 || st.Dropped.DiskFull != uint64(len(dropped)) || st.Dropped.Total() != st.Dropped.DiskFull || !st.DiskFull {
				t.Fatalf("stats with a full queue (%d dropped): %+v", len(dropped), st)
			}
			if err := w.Retry(); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Retry on a full disk: %v", err)
			}
			checkAccounting(t, w, seq)
			checkSeqs(t, "full log", readLines(t, path), 0, testLine)

			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			if err := w.Retry(); err != nil {
				t.Fatalf("Retry with space back: %v", err)
			}
			if st := w.Stats(); st.DiskFull || st.Queued != 0 {
				t.Fatalf("after Retry with space back: %+v", st)
			}
			if !strings.Contains(logged.String(), "disk space back") || !strings.Contains(logged.String(), fmt.Sprintf("dropped_while_full=%d", len(dropped))) {
				t.Errorf("the resumption is not logged with its loss (%d):\n%s", len(dropped), logged.String())
			}
			for range 10 {
				if err := write(); err != nil {
					t.Fatalf("after space came back: %v", err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, w, seq)
			lines := readLines(t, path)
			if uint64(len(lines)) != w.Stats().Lines || len(lines) != seq-len(dropped) {
				t.Fatalf("%d lines on disk, Stats.Lines %d, %d given, %d dropped", len(lines), w.Stats().Lines, seq, len(dropped))
			}
			want := 0
			for i, l := range lines {
				for dropped[want] {
					want++
				}
				got, err := lineSeq(l, testLine)
				if err != nil || got != want {
					t.Fatalf("line %d: seq %d, want %d (%v)", i+1, got, want, err)
				}
				want++
			}
		})
	}
}

// TestDiskFullCloseDropsQueue: lines still queued at Close are counted as
// dropped, and Close says so.
func TestDiskFullCloseDropsQueue(t *testing.T) {
	dir := mountTiny(t, "16k")
	path := filepath.Join(dir, "audit.log")
	w, err := Open(Config{Path: path, Flush: FlushIncremental}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	for ; !errors.Is(err, ErrQueued); seq++ {
		err = w.WriteLine(testLine(seq))
	}
	if err := w.Close(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Close with a queue on a full disk: %v", err)
	}
	if st := w.Stats(); st.Queued != 0 || st.Dropped.DiskFull != 1 {
		t.Errorf("stats %+v", st)
	}
	checkAccounting(t, w, seq)
}

// TestDiskFullCloseWritesQueue: space back by Close: the queue is written,
// nothing dropped (under every policy: the async one once sent an fsync
// request to its stopped goroutine here).
func TestDiskFullCloseWritesQueue(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			path, ballast := tinyDisk(t, "256k", 160<<10)
			w, err := Open(Config{Path: path, Flush: p, Freq: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			seq := 0
			for ; !errors.Is(err, ErrQueued); seq++ {
				err = w.WriteLine(testLine(seq))
			}
			for range 20 {
				if err := w.WriteLine(testLine(seq)); !errors.Is(err, ErrQueued) {
					t.Fatal(err)
				}
				seq++
			}
			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if st := w.Stats(); st.Queued != 0 || st.Dropped.Total() != 0 || st.DiskFull {
				t.Errorf("stats %+v", st)
			}
			checkAccounting(t, w, seq)
			if next := checkSeqs(t, "log", readLines(t, path), 0, testLine); next != seq {
				t.Errorf("log ends at %d, want %d", next-1, seq-1)
			}
		})
	}
}
