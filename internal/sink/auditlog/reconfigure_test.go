package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/testing/fdinfo"
)

// fdFlags returns the open flags of this process's descriptor of path.
func fdFlags(t *testing.T, path string) int {
	t.Helper()
	flags, targets, ok := fdinfo.Flags(t, "self", path)
	if !ok {
		t.Fatalf("no descriptor of %s open (open: %q)", path, targets)
	}
	return flags
}

// TestReconfigure: the logrotate way (rename, then Reconfigure) and a
// changed configuration keep every line, in order, and the new limits and
// flush policy take effect on the same Writer.
func TestReconfigure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	moved := filepath.Join(dir, "moved")
	w := mustOpen(t, Config{Path: path, Flush: FlushNone})
	seq := 0
	write := func(n int) {
		t.Helper()
		for range n {
			if err := w.WriteLine(fixedLine(seq)); err != nil {
				t.Fatalf("line %d: %v", seq, err)
			}
			seq++
		}
	}
	write(10)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	write(5) // buffered under FlushNone
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if fdFlags(t, moved)&syscall.O_DSYNC != 0 {
		t.Fatal("O_DSYNC before FlushData")
	}

	// Refused: nothing changes.
	if err := w.Reconfigure(Config{Path: path, NumLogs: 1000}); err == nil {
		t.Fatal("NumLogs 1000 accepted")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Reconfigure opened the log: %v", err)
	}

	// 100-byte lines, 20 per file of 2000 bytes, 2 files.
	if err := w.Reconfigure(Config{Path: path, Flush: FlushData, MaxBytes: 2000, NumLogs: 2}); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Buffered != 0 || st.Lines != 15 {
		t.Fatalf("after Reconfigure the buffered lines are not written: %+v", st)
	}
	if fdFlags(t, path)&syscall.O_DSYNC == 0 {
		t.Fatal("FlushData: the log is not open O_DSYNC")
	}
	write(25)
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("MaxBytes 2000 did not rotate: %v", err)
	}
	if err := w.Reconfigure(Config{Path: path, Flush: FlushIncrementalAsync, Freq: 3}); err != nil {
		t.Fatal(err)
	}
	if fdFlags(t, path)&syscall.O_DSYNC != 0 {
		t.Fatal("incremental_async: the log is still open O_DSYNC")
	}
	write(30) // no limit now: the file grows past 2000 bytes
	if err := w.Reconfigure(Config{Path: path, Flush: FlushIncremental}); err != nil {
		t.Fatal(err)
	}
	write(5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The lines buffered at the rename go to the new file, first.
	next := checkSeqs(t, "moved", readLines(t, moved), 0, fixedLine)
	if next != 10 {
		t.Errorf("the renamed file ends at line %d, want 9", next-1)
	}
	next = checkSeqs(t, "audit.log.1", readLines(t, path+".1"), next, fixedLine)
	if next = checkSeqs(t, "audit.log", readLines(t, path), next, fixedLine); next != seq {
		t.Errorf("logs end at line %d, want %d", next-1, seq-1)
	}
	if fi, _ := os.Stat(path); fi.Size() <= 2000 {
		t.Errorf("after the limit was lifted the log is %d bytes", fi.Size())
	}
	checkAccounting(t, w, seq)
}

// TestReconfigureConcurrent: Reconfigure and renames race with writers on
// every policy change (run it with -race): each line is in exactly one
// file.
func TestReconfigureConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w := mustOpen(t, Config{Path: path})
	const goroutines, each = 4, 500
	line := func(g, i int) []byte {
		return fmt.Appendf(nil, "type=CONTAINER_OP msg=audit(1.000:%d): g=%d i=%d", g*each+i, g, i)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var err error
				if i%2 == 0 {
					err = w.WriteLine(line(g, i))
				} else {
					err = w.WriteLines(append(line(g, i), '\n'))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for n := range 40 {
		if n%4 == 0 {
			// ENOENT: the writer's own rotation has just renamed the file
			// and not yet created the next one; nothing to move this time.
			if err := os.Rename(path, filepath.Join(dir, "moved."+strconv.Itoa(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		cfg := Config{Path: path, Flush: allPolicies[n%len(allPolicies)], Freq: 7, MaxBytes: int64(3000 + 1000*(n%3)), NumLogs: 100}
		if err := w.Reconfigure(cfg); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		for _, l := range readLines(t, f) {
			if seen[l] {
				t.Fatalf("%s: duplicate %q", f, l)
			}
			seen[l] = true
		}
	}
	for g := range goroutines {
		for i := range each {
			if !seen[string(line(g, i))] {
				t.Fatalf("line g=%d i=%d is in no file (%d files)", g, i, len(files))
			}
		}
	}
	checkAccounting(t, w, goroutines*each)
}

// TestReconfigureOpenFails: when the new file cannot be opened, the new
// policy still applies to the file in use, lines buffered under FlushNone
// are written before any later line, and the open is tried again.
func TestReconfigureOpenFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w := mustOpen(t, Config{Path: path, Flush: FlushNone})
	writeFixed(t, w, 0, 3)
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Reconfigure(Config{Path: path, Flush: FlushIncremental}); !errors.Is(err, ErrRotate) {
		t.Fatalf("Reconfigure onto a FIFO: %v, want ErrRotate", err)
	}
	if st := w.Stats(); st.Buffered != 0 || st.Lines != 3 {
		t.Fatalf("buffered lines not written at once: %+v", st)
	}
	if err := w.WriteLine(fixedLine(3)); !errors.Is(err, ErrRotate) || errors.Is(err, ErrDropped) {
		t.Fatalf("line while the path is a FIFO: %v", err)
	}
	os.Remove(path)
	if err := w.WriteLine(fixedLine(4)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := checkSeqs(t, "moved", readLines(t, path+".moved"), 0, fixedLine)
	if checkSeqs(t, "audit.log", readLines(t, path), next, fixedLine) != 5 {
		t.Error("lines missing")
	}
}
