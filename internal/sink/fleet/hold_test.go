package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/testing/testwait"
)

// heldHost is the daemon's record path to the host log and the stream
// route, spooling in the held form, beside an encoder that makes the
// same batches' messages without the host log (want): the stream must
// get the same messages, byte for byte, from either.
type heldHost struct {
	t      *testing.T
	dir    string
	log    *auditlog.Writer
	out    *output.Output
	places *Places
	sink   *Sink
	spool  *Spool
	ref    Encoder
	want   []Msg // what the copied form's messages are, in order
	// stream: events routed to the stream only (not the host log) from
	// this one on.
	every, n int
	hostOnly func(i int) bool
}

func newHeldHost(t *testing.T, lcfg auditlog.Config, scfg SpoolConfig) *heldHost {
	t.Helper()
	h := &heldHost{t: t, dir: t.TempDir(), every: 37}
	lcfg.Path = filepath.Join(h.dir, "audit.log")
	w, err := auditlog.Open(lcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.log = w
	h.places = &Places{}
	w.Observe(h.places)
	h.out = output.New(output.Config{Host: w, HostPlacer: h.places})
	h.openSpool(scfg)
	h.ref = Encoder{Host: "h1", Boot: "b1"}
	t.Cleanup(func() { h.places.Close(); h.log.Close() })
	return h
}

func (h *heldHost) openSpool(scfg SpoolConfig) {
	h.t.Helper()
	if scfg.Dir == "" {
		scfg.Dir = filepath.Join(h.dir, "spool")
	}
	if scfg.MaxBytes == 0 {
		scfg.MaxBytes = 1 << 30
	}
	scfg.LogDir, scfg.LogBase = h.dir, "audit.log"
	sp, err := OpenSpool(scfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.spool = sp
	h.sink = NewSink("", "h1", "b1", false, sp)
	h.sink.Places = h.places
	h.t.Cleanup(func() { sp.Close() })
}

// Write takes one event as the daemon's tee does.
func (h *heldHost) Write(ev *pipeline.Event) {
	if h.hostOnly != nil && !h.hostOnly(h.n) {
		ev.Routes = rules.Routes{} // the stream only, not the host log
	}
	h.out.Write(ev)
	h.sink.WriteLines(ev, h.out.Lines(), h.out.Span())
	h.ref.Add(ev)
	if h.n++; h.n%h.every == 0 {
		h.commit()
	}
}

func (h *heldHost) commit() {
	h.out.Commit()
	if err := h.sink.Commit(); err != nil {
		h.t.Fatal(err)
	}
	for _, m := range h.ref.Flush(nil, nil) {
		m.Data = bytes.Clone(m.Data)
		h.want = append(h.want, m)
	}
}

// read returns every message the spool has, acknowledging them.
func (h *heldHost) read() []Msg {
	h.t.Helper()
	var got []Msg
	for {
		m, pos, err := h.spool.Next(false)
		if errors.Is(err, ErrEmpty) {
			return got
		}
		if err != nil {
			h.t.Fatal(err)
		}
		m.Data = bytes.Clone(m.Data)
		got = append(got, m)
		h.spool.Ack(pos, m.ID)
	}
}

func sameMsgs(t *testing.T, got, want []Msg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Subject != w.Subject || g.N != w.N || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("message %d:\n got %s %s %d\n%q\nwant %s %s %d\n%q", i, g.ID, g.Subject, g.N, g.Data, w.ID, w.Subject, w.N, w.Data)
		}
	}
}

func genEvents(seed uint64, from, n int) string {
	return genLog(rand.New(rand.NewPCG(seed, 1)), from, n, 1_700_000_000)
}

// TestHeldSameMessages: with the host log holding the events, the spool
// writes a fraction of the bytes and the publisher gets the very messages
// the copied form holds, from memory or read back from the log (all of
// them, none, some: the memory's bound); events the host log does not
// have, and every event when the log's blocks do not land whole
// (FlushNone's buffer), are spooled whole.
func TestHeldSameMessages(t *testing.T) {
	for _, mem := range []struct {
		name  string
		bound int64
		every int // events a batch
	}{
		{"memory", 0, 37}, {"disk", -1, 37}, {"part in memory", 32 << 10, 37},
		// One batch whose messages the spool writes in several writes
		// (256 KiB each), kept or not.
		{"memory, one batch", 0, 1 << 30}, {"part in memory, one batch", 300 << 10, 1 << 30},
	} {
		t.Run(mem.name, func(t *testing.T) { testHeldSameMessages(t, mem.bound, mem.every) })
	}
}

func testHeldSameMessages(t *testing.T, memory int64, every int) {
	for _, tc := range []struct {
		name     string
		flush    auditlog.FlushPolicy
		hostOnly func(int) bool
		// Of the messages' bytes, the most the spool may write, and the
		// least.
		most, least float64
	}{
		{"held", auditlog.FlushIncrementalAsync, nil, 0.3, 0},
		{"incremental", auditlog.FlushIncremental, nil, 0.3, 0},
		{"some not in the host log", auditlog.FlushIncrementalAsync, func(i int) bool { return i%5 != 0 }, 0.95, 0.3},
		{"flush none: nothing placed", auditlog.FlushNone, nil, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeldHost(t, auditlog.Config{Flush: tc.flush}, SpoolConfig{Memory: memory})
			h.hostOnly, h.every = tc.hostOnly, every
			replay(genEvents(1, 0, 2000), h)
			h.commit()
			st := h.spool.Stats()
			got := h.read()
			sameMsgs(t, got, h.want)
			if every == 1<<30 {
				// Nine messages, one a subject: the shares below are
				// not for them.
				return
			}
			var data int
			for _, m := range h.want {
				data += len(m.Data)
			}
			share := float64(st.Written) / float64(data)
			if share > tc.most || share < tc.least || (st.Held > 0) != (tc.least < 1) || st.Held > 0 && st.HeldFiles != 1 {
				t.Errorf("spool stats %+v: wrote %.2f of the messages' %d bytes, want %.2f–%.2f", st, share, data, tc.least, tc.most)
			}
			// Read back: none from memory; every held message from disk;
			// some, not all, in part.
			st = h.spool.Stats()
			held := tc.least < 1
			if st.Unreadable != 0 || memory == 0 && st.ReadBack != 0 ||
				memory < 0 && held && st.ReadBack == 0 ||
				memory > 0 && held && (st.ReadBack == 0 || st.ReadBack >= uint64(len(got))) {
				t.Errorf("unreadable %d, read back %d of %d messages", st.Unreadable, st.ReadBack, len(got))
			}
		})
	}
}

// TestHeldCloseBehind: a reader close behind the writer (a publisher
// keeping up) gets held messages from memory, without reading the log.
func TestHeldCloseBehind(t *testing.T) {
	h := newHeldHost(t, auditlog.Config{}, SpoolConfig{})
	var got []Msg
	h.every = 1 << 30 // batches end here
	lines := strings.SplitAfter(genEvents(5, 0, 2000), "\n")
	for i := 0; i < len(lines); i += 100 {
		replay(strings.Join(lines[i:min(i+100, len(lines))], ""), h)
		h.commit()
		got = append(got, h.read()...)
	}
	sameMsgs(t, got, h.want)
	var data int
	for _, m := range h.want {
		data += len(m.Data)
	}
	if st := h.spool.Stats(); st.ReadBack != 0 || st.Written > uint64(data)/3 {
		t.Fatalf("spool %+v (messages %d bytes): want every message held, and read from memory", st, data)
	}
}

// TestHeldThroughRotation: the host log rotated by contid (its oldest
// files removed: num_logs 2) and renamed away as logrotate does, with
// nothing published meanwhile: the spool keeps the files it refers to
// open, and every message comes back whole. Once published past, a
// file is let go.
func TestHeldThroughRotation(t *testing.T) {
	h := newHeldHost(t, auditlog.Config{NumLogs: 2}, SpoolConfig{SegmentBytes: 4 << 10, Memory: -1})
	log := genEvents(2, 0, 3000)
	lines := strings.SplitAfter(log, "\n")
	for i, part := 0, len(lines)/4; i < 4; i++ {
		replay(strings.Join(lines[i*part:min((i+1)*part, len(lines))], ""), h)
		h.commit()
		switch i {
		case 0, 1:
			if err := h.log.Rotate(); err != nil {
				t.Fatal(err)
			}
		case 2: // logrotate: rename, then the daemon reopens (SIGHUP)
			if err := os.Rename(filepath.Join(h.dir, "audit.log"), filepath.Join(h.dir, "audit.log-20261204")); err != nil {
				t.Fatal(err)
			}
			if err := h.log.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "audit.log.2")); err == nil {
		t.Fatal("num_logs 2 kept audit.log.2: the test does not remove a held file")
	}
	if st := h.spool.Stats(); st.HeldFiles != 4 {
		t.Fatalf("held files %d, want 4 (two of them removed from the directory)", st.HeldFiles)
	}
	sameMsgs(t, h.read(), h.want)
	if st := h.spool.Stats(); st.HeldFiles > 1 || st.Unreadable != 0 {
		t.Fatalf("after publishing: %+v, want at most the file of the last segment held", st)
	}
}

// TestHeldAfterRestart: a spool opened anew (contid restarted) finds the
// files it refers to by device and inode in the log directory, under
// another name too; messages of a file removed meanwhile, or truncated
// and written anew (logrotate's copytruncate), are not published but
// counted lost, as many events as they held.
func TestHeldAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		harm  func(t *testing.T, h *heldHost, first string)
		lost1 bool // the first file's messages are lost
	}{
		{"found", func(*testing.T, *heldHost, string) {}, false},
		{"renamed", func(t *testing.T, h *heldHost, first string) {
			// logrotate's dateext name
			if err := os.Rename(first, filepath.Join(h.dir, "audit.log-20261204")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removed", func(t *testing.T, h *heldHost, first string) {
			if err := os.Remove(first); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"a FIFO in its place", func(t *testing.T, h *heldHost, first string) {
			// Named like a log: opening it must not hang the reader.
			if err := os.Remove(first); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(first, 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"copytruncate", func(t *testing.T, h *heldHost, first string) {
			b, err := os.ReadFile(first)
			if err != nil {
				t.Fatal(err)
			}
			other := []byte(genEvents(9, 5000, 3000))
			if err := os.WriteFile(first, other[:min(len(b), len(other))], 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeldHost(t, auditlog.Config{}, SpoolConfig{})
			replay(genEvents(3, 0, 1000), h)
			h.commit()
			first := len(h.want)
			if err := h.log.Rotate(); err != nil {
				t.Fatal(err)
			}
			replay(genEvents(3, 1000, 1000), h)
			h.commit()
			h.places.Close()
			h.spool.Close()
			tc.harm(t, h, filepath.Join(h.dir, "audit.log.1"))

			h.openSpool(SpoolConfig{})
			// Read once without acknowledging, then again from the
			// cursor, as a publisher does after a failure: lost events
			// are counted once.
			for {
				if _, _, err := h.spool.Next(false); err != nil {
					break
				}
			}
			h.spool.Rewind()
			got, want := h.read(), h.want
			var lost uint64
			if tc.lost1 {
				for _, m := range want[:first] {
					lost += m.N
				}
				want = want[first:]
			}
			sameMsgs(t, got, want)
			if st := h.spool.Stats(); st.Unreadable != lost {
				t.Fatalf("unreadable %d events, want %d", st.Unreadable, lost)
			}
		})
	}
}

// TestHeldSpoolBound: the log bytes held count against the spool's
// bound, so a long outage cannot keep removed logs' space without limit.
func TestHeldSpoolBound(t *testing.T) {
	h := newHeldHost(t, auditlog.Config{}, SpoolConfig{MaxBytes: 64 << 10, SegmentBytes: 8 << 10, Action: DropNew})
	replay(genEvents(4, 0, 3000), h)
	h.commit()
	st := h.spool.Stats()
	if st.DroppedNew == 0 || st.Held == 0 || st.Bytes+st.Held > 64<<10 {
		t.Fatalf("spool %+v: want the bound reached with held bytes counted", st)
	}
}

// TestHeldSpoolBlock: at the bound, block waits for the publisher, which
// frees space as it acknowledges, held bytes with it: nothing is lost
// and the writer is never stuck for good (each segment holds a bounded
// share of the bound, held bytes included, so acknowledging removes
// segments).
func TestHeldSpoolBlock(t *testing.T) {
	h := newHeldHost(t, auditlog.Config{}, SpoolConfig{MaxBytes: 64 << 10, SegmentBytes: 24 << 10, Action: Block})
	var (
		mu   sync.Mutex
		got  []Msg
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			m, pos, err := h.spool.Next(true)
			if err != nil {
				return // ErrClosed: all read
			}
			mu.Lock()
			got = append(got, Msg{ID: m.ID, Subject: m.Subject, N: m.N, Data: bytes.Clone(m.Data)})
			mu.Unlock()
			h.spool.Ack(pos, m.ID)
		}
	}()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		replay(genEvents(7, 0, 3000), h)
		h.commit()
		h.spool.Close()
	}()
	testwait.Until(t, "every message through a blocking spool", func() (bool, any) {
		select {
		case <-done:
			return true, nil
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return false, len(got)
	})
	<-wrote
	sameMsgs(t, got, h.want)
	if st := h.spool.Stats(); st.Blocked == 0 || st.Lost() != 0 {
		t.Fatalf("spool %+v: want the writer blocked, nothing lost", st)
	}
}

// TestEventLines: the check of lines read back from the log.
func TestEventLines(t *testing.T) {
	for _, tc := range []struct {
		lines string
		ok    bool
	}{
		{"type=SYSCALL msg=audit(1700000000.042:1042): a=1\ntype=EOE msg=audit(1700000000.042:1042): \n", true},
		{"type=SYSCALL msg=audit(1700000000.042:1042): a=1\n", true},
		{"type=SYSCALL msg=audit(1700000000.042:1043): a=1\n", false},
		{"type=SYSCALL msg=audit(1700000000.042:1042): a=1\ntype=EOE msg=audit(1700000000.042:1043): \n", false},
		{"type=SYSCALL msg=audit(1700000000.042:1042): a=1", false},
		{"", false},
		{"\x00\x00\x00\n", false},
	} {
		fl := fmt.Appendf(nil, "3 h1:b1:1700000000.042:1042 %d\n", len(tc.lines))
		if got := eventLines(fl, []byte(tc.lines)); got != tc.ok {
			t.Errorf("eventLines(%q) = %v, want %v", tc.lines, got, tc.ok)
		}
	}
	l := []byte("type=X msg=audit(1.000:1): \n")
	if eventLines(fmt.Appendf(nil, "3 nocolons %d\n", len(l)), l) {
		t.Error("a frame line without an identity passed")
	}
	if eventLines(fmt.Appendf(nil, "3 h:b:1.000:1 %d\n", len(l)+1), l) {
		t.Error("a frame line of another size passed")
	}
	if !eventLines(fmt.Appendf(nil, "3 h:b:1.000:1 %d\n{}\n", len(l)+3), l) {
		t.Error("a frame with its JSON line failed")
	}
}

// TestHeldInodeReused: a log the spool could not find (removed while
// contid was down) leaves its device and inode known as missing; a log
// written now that reuses that inode is held all the same, and its
// events are published. (The reuse is arranged: the kernel picks the
// inode.)
func TestHeldInodeReused(t *testing.T) {
	h := newHeldHost(t, auditlog.Config{}, SpoolConfig{Memory: -1})
	f, err := os.Open(filepath.Join(h.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := keyOf(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	h.spool.mu.Lock()
	h.spool.files[key] = &logFile{key: key, refs: 1} // as resolve leaves a log not found
	h.spool.mu.Unlock()
	replay(genEvents(6, 0, 500), h) // read back from the log (nothing kept in memory)
	h.commit()
	sameMsgs(t, h.read(), h.want)
	if st := h.spool.Stats(); st.Unreadable != 0 || st.ReadBack == 0 {
		t.Fatalf("spool %+v: want every message read back", st)
	}
}
