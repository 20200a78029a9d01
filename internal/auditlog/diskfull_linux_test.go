package auditlog

import (
	"bytes"
	"errors"
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

// TestDiskFull fills a real 64 KiB file system: the error is returned with
// its errno and counted, the lines written before stay whole (a line cut
// off by ENOSPC in mid-write is removed), and writing resumes cleanly when
// space comes back.
func TestDiskFull(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			dir := mountTiny(t, "64k")
			ballast := filepath.Join(dir, "ballast")
			if err := os.WriteFile(ballast, make([]byte, 12<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "audit.log")
			var logged bytes.Buffer
			w, err := Open(Config{Path: path, Flush: p, Freq: 5}, slog.New(slog.NewTextHandler(&logged, nil)))
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
			if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrDropped) {
				t.Fatalf("after %d lines: %v, want ENOSPC and ErrDropped", given, err)
			}
			st := w.Stats()
			if st.WriteErrors == 0 || st.Dropped.WriteFailed != 1 {
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
			if got := w.Stats().Dropped.WriteFailed; got != 2 {
				t.Errorf("WriteFailed %d, want 2", got)
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
