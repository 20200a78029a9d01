package search

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
)

// logFeed writes the lines of a generated log through an auditlog.Writer
// observed by a LogIndex, the way the daemon does: most as blocks of
// "events" whose records are noted first (output), some line by line
// without a note (the daemon's own records).
type logFeed struct {
	t     *testing.T
	rng   *rand.Rand
	w     *auditlog.Writer
	x     *LogIndex
	lines []string // with their '\n'
}

func newLogFeed(t *testing.T, seed int64, info genInfo) *logFeed {
	t.Helper()
	var lines []string
	for _, f := range info.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if strings.HasSuffix(l, "\n") && len(l) > 1 {
				lines = append(lines, l)
			}
		}
	}
	return &logFeed{t: t, rng: rand.New(rand.NewSource(seed)), lines: lines}
}

func (lf *logFeed) open(cfg auditlog.Config) {
	lf.t.Helper()
	w, err := auditlog.Open(cfg, nil)
	if err != nil {
		lf.t.Fatal(err)
	}
	lf.w, lf.x = w, NewLogIndex(1024, nil)
	w.Observe(lf.x)
}

// write writes the next n lines (or what is left); false at the end.
func (lf *logFeed) write(n int) bool {
	for n > 0 && len(lf.lines) > 0 {
		if lf.rng.Intn(8) == 0 {
			lf.w.WriteLine([]byte(strings.TrimSuffix(lf.lines[0], "\n")))
			lf.lines, n = lf.lines[1:], n-1
			continue
		}
		var buf []byte
		for ev := 0; ev < 1+lf.rng.Intn(20) && len(lf.lines) > 0; ev++ {
			k := min(len(lf.lines), 1+lf.rng.Intn(8))
			var recs []records.Record
			for _, l := range lf.lines[:k] {
				buf = append(buf, l...)
				r, err := records.ParseLine(l)
				if err != nil { // a malformed line: noted without terms
					r = records.Record{}
				}
				recs = append(recs, r)
			}
			lf.x.Note(recs)
			lf.lines, n = lf.lines[k:], n-k
		}
		lf.x.Block(buf)
		lf.w.WriteLines(buf)
	}
	return len(lf.lines) > 0
}

// checkLogs runs random queries over the files of dir, read-only through
// the sidecars the LogIndex wrote and by scanning, and fails when they
// differ. It returns the stats of the last indexed search.
func checkLogs(t *testing.T, rng *rand.Rand, info genInfo, dir string, n int) Stats {
	t.Helper()
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	for i := 0; i < n; i++ {
		q := randomQuery(rng, info, 1795687200, 3600)
		if i == 0 {
			q = Query{}
		}
		want := collect(t, files, &q, Options{NoIndex: true})
		var got string
		got, st = collectStats(t, files, &q, Options{ReadOnly: true})
		if got != want {
			t.Fatalf("query %+v: indexed %d bytes, scan %d", q, len(got), len(want))
		}
	}
	return st
}

// TestLogIndex: a log written through an auditlog.Writer, rotated by
// size, renamed away with a reopen (logrotate and SIGHUP), its lines
// partly noted and partly not: at any point, searches through the
// sidecars the LogIndex wrote (read-only) equal the scan, and once the
// writer is closed every file's sidecar is used and the searches read a
// small part of the logs.
func TestLogIndex(t *testing.T) {
	info := mustGenLogs(t, genConfig{Dir: t.TempDir(), Containers: 30, Bytes: 600 << 10, Start: 1795687200, Span: 3600, Seed: 5, Interleave: 0.1})
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	lf := newLogFeed(t, 1, info)
	lf.open(auditlog.Config{Path: path, MaxBytes: 100 << 10, NumLogs: 50, MaxAction: auditlog.Rotate, Flush: auditlog.FlushIncrementalAsync})
	rng := rand.New(rand.NewSource(2))
	for step := 0; lf.write(50 + rng.Intn(300)); step++ {
		switch rng.Intn(6) {
		case 0:
			if err := lf.x.Sync(); err != nil {
				t.Fatal(err)
			}
			checkLogs(t, rng, info, dir, 10)
		case 1: // logrotate: rename, then SIGHUP's reopen
			files, _ := Files(dir)
			for i := range files { // oldest first
				next := files[i] + ".1"
				if !strings.HasSuffix(files[i], "audit.log") {
					next = rotName(files[i])
				}
				os.Rename(files[i], next)
			}
			if err := lf.w.Reconfigure(auditlog.Config{Path: path, MaxBytes: 100 << 10, NumLogs: 50, MaxAction: auditlog.Rotate, Flush: auditlog.FlushIncrementalAsync}); err != nil {
				t.Fatal(err)
			}
		case 2: // a reopen of the same file
			if err := lf.w.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := lf.w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Files(dir)
	if len(files) < 5 {
		for _, f := range files {
			fi, _ := os.Stat(f)
			t.Log(f, fi.Size())
		}
		t.Fatalf("only %d files: the test rotates too little", len(files))
	}
	st := checkLogs(t, rng, info, dir, 300)
	if st.Indexed != len(files) {
		t.Errorf("sidecars used for %d of %d files", st.Indexed, len(files))
	}
	if s := lf.x.Stats(); s.NotedLines == 0 || s.NotedLines == s.Lines || s.Errors != 0 {
		t.Errorf("lines indexed %d, noted %d, errors %d: want noted and parsed lines, no errors", s.Lines, s.NotedLines, s.Errors)
	}
	q := Query{Contids: []contid.ID{5}, Exact: true}
	st, err := Search(files, &q, Options{ReadOnly: true}, func(*Event) error { return nil })
	if err != nil || st.BytesRead > st.Bytes/2 {
		t.Errorf("one container's search read %d of %d bytes (%v)", st.BytesRead, st.Bytes, err)
	}
}

// TestLogIndexCrash: the writer dies (SIGKILL) with lines written since
// the last Sync and a line half written. Searches through the sidecar it
// left equal the scan; a torn sidecar is not used and the file is
// scanned; the next writer (which ends the half line) starts again from
// the sidecar, or from the log's start when it is torn, and leaves a
// sidecar that covers everything.
func TestLogIndexCrash(t *testing.T) {
	info := mustGenLogs(t, genConfig{Dir: t.TempDir(), Containers: 30, Bytes: 1 << 20, Start: 1795687200, Span: 3600, Seed: 6, Interleave: 0.1})
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	cfg := auditlog.Config{Path: path, Flush: auditlog.FlushIncremental, Freq: 10}
	lf := newLogFeed(t, 3, info)
	rng := rand.New(rand.NewSource(4))
	for round := 0; round < 3; round++ {
		lf.open(cfg)
		lf.write(700)
		if err := lf.x.Sync(); err != nil {
			t.Fatal(err)
		}
		lf.write(300) // not synced: the crash loses their index
		// The crash: the writer is gone in the middle of a line.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(lf.lines[0][:len(lf.lines[0])/2])
		f.Close()
		st := checkLogs(t, rng, info, dir, 40)
		if st.Indexed != 1 || st.Torn != 1 {
			t.Fatalf("round %d: after the crash, sidecar used %d, torn lines %d (want 1, 1)", round, st.Indexed, st.Torn)
		}
		if round == 1 { // a sidecar torn by a system crash
			side := sidecarFor(t, path)
			b, _ := os.ReadFile(side)
			os.WriteFile(side, b[:len(b)/2], 0o600)
			if st := checkLogs(t, rng, info, dir, 20); st.Indexed != 0 {
				t.Fatalf("a torn sidecar was used")
			}
		}
	}
	lf.open(cfg)
	for lf.write(500) {
	}
	if err := lf.w.Close(); err != nil {
		t.Fatal(err)
	}
	st := checkLogs(t, rng, info, dir, 200)
	if st.Indexed != 1 || st.BytesRead > st.Bytes/2 {
		t.Fatalf("the final sidecar was not used well: %+v", st)
	}
}

func sidecarFor(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	dev, ino := fileID(fi)
	return sidecarPath(path, dev, ino)
}

// TestLogIndexTick: at the daemon's tick the live log's sidecar is written
// at the first tick of a file, then only once SidecarEvery passed or the
// file grew SidecarBytes; a tick with nothing new writes nothing.
func TestLogIndexTick(t *testing.T) {
	info := mustGenLogs(t, genConfig{Dir: t.TempDir(), Containers: 5, Bytes: 6 << 20, Start: 1795687200, Span: 3600, Seed: 9})
	lf := newLogFeed(t, 4, info)
	lf.open(auditlog.Config{Path: filepath.Join(t.TempDir(), "audit.log"), MaxAction: auditlog.Ignore, Flush: auditlog.FlushIncrementalAsync})
	syncs := func() uint64 { return lf.x.Stats().Syncs }
	now := time.Now()
	tick := func(after time.Duration) uint64 {
		t.Helper()
		now = now.Add(after)
		if err := lf.x.Tick(now); err != nil {
			t.Fatal(err)
		}
		return syncs()
	}
	lf.write(100)
	if n := tick(0); n != 1 {
		t.Fatalf("the first tick of a file wrote %d sidecars, want 1", n)
	}
	lf.write(100)
	if n := tick(time.Second); n != 1 {
		t.Fatalf("a tick a second later wrote a sidecar (%d)", n)
	}
	if n := tick(SidecarEvery); n != 2 {
		t.Fatalf("a tick %v later: %d sidecars, want 2", SidecarEvery, n)
	}
	if n := tick(SidecarEvery); n != 2 {
		t.Fatalf("a tick with nothing new wrote a sidecar (%d)", n)
	}
	// SidecarBytes more: written without waiting.
	for lf.x.cur.off-lf.x.cur.synced < SidecarBytes {
		if !lf.write(500) {
			t.Fatal("the generated logs are too small")
		}
	}
	if n := tick(time.Second); n != 3 {
		t.Fatalf("a tick after %d new bytes: %d sidecars, want 3", SidecarBytes, n)
	}
}
