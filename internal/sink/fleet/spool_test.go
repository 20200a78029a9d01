package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/contid/contid/internal/testing/testwait"
)

// testMsg is a message of two events, all of one size.
func testMsg(i int) Msg {
	id := fmt.Sprintf("h:b:%03d.000:%03d", i, i)
	return Msg{ID: id + "/0+2", Subject: "contid.h.h", N: 2,
		Data: fmt.Appendf(nil, "contid-batch 1 %s+2 2\n0 %s 2\na\n1 %s:1 2\nb\n", id, id, id)}
}

// testRecordSize is the bytes a testMsg takes in a spool segment.
func testRecordSize() int64 {
	m := testMsg(0)
	return int64(frameHdr + 4 + len(m.ID) + len(m.Subject) + len(m.Data))
}

// readAll reads what is left without waiting and acknowledges it.
func readAll(t *testing.T, s *Spool, ack bool) []string {
	t.Helper()
	var ids []string
	for {
		m, pos, err := s.Next(false)
		if errors.Is(err, ErrEmpty) || errors.Is(err, ErrClosed) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(string(m.Data), "contid-batch 1 h:b:%d.", &i); err != nil || m.ID != testMsg(i).ID || string(m.Data) != string(testMsg(i).Data) || m.N != 2 {
			t.Fatalf("record %q holds %q", m.ID, m.Data)
		}
		ids = append(ids, m.ID)
		if ack {
			s.Ack(pos, m.ID)
		}
	}
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, testMsg(i).ID)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fromMemoryAndDisk runs test with the spool's messages read from memory
// (the default) and from disk only.
func fromMemoryAndDisk(t *testing.T, test func(t *testing.T, memory int64)) {
	t.Run("memory", func(t *testing.T) { test(t, 0) })
	t.Run("disk", func(t *testing.T) { test(t, -1) })
}

func TestSpoolOrderAndRecovery(t *testing.T) { fromMemoryAndDisk(t, testSpoolOrderAndRecovery) }

func testSpoolOrderAndRecovery(t *testing.T, memory int64) {
	dir := t.TempDir()
	cfg := SpoolConfig{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1024, Action: DropNew, Memory: memory}
	s, err := OpenSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m := testMsg(i)
		if err := s.Append(&m); err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, s, false); len(got) != 0 {
		t.Fatalf("read %d records before Flush", len(got))
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Read 60, acknowledge 40: a crash then leaves 60 to read again.
	var got []string
	for i := range 60 {
		m, pos, err := s.Next(false)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.ID)
		if i < 40 {
			s.Ack(pos, m.ID)
		}
	}
	if !equal(got, ids(0, 60)) {
		t.Fatalf("order: %v", got)
	}
	s.Save()
	if st := s.Stats(); st.Pending != 60 || st.Segments < 2 {
		t.Fatalf("stats after 40 acks: %+v", st)
	}
	// A crash: no Close. Tear the last record of the last segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	last := segs[len(segs)-1]
	fi, _ := os.Stat(last)
	if fi.Size() == 0 { // just started
		last = segs[len(segs)-2]
		fi, _ = os.Stat(last)
	}
	if err := os.Truncate(last, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSpool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s2.LastAcked() != testMsg(39).ID {
		t.Fatalf("last acked %q", s2.LastAcked())
	}
	if st := s2.Stats(); st.Torn == 0 || st.Pending != 59 {
		t.Fatalf("stats after reopen: %+v", st)
	}
	got = readAll(t, s2, true)
	if !equal(got, ids(40, 99)) {
		t.Fatalf("after reopen read %d: %v", len(got), got)
	}
	// Appends go on after the cut, in order.
	m := testMsg(100)
	if err := s2.Append(&m); err != nil {
		t.Fatal(err)
	}
	s2.Flush()
	if got := readAll(t, s2, true); !equal(got, ids(100, 101)) {
		t.Fatalf("after append: %v", got)
	}
	if st := s2.Stats(); st.Pending != 0 || st.Segments != 1 {
		t.Fatalf("drained: %+v", st)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSpoolFull(t *testing.T) { fromMemoryAndDisk(t, testSpoolFull) }

func testSpoolFull(t *testing.T, memory int64) {
	size := testRecordSize()
	for _, tc := range []struct {
		action  Action
		wantIDs []string
		new     uint64
		old     uint64
	}{
		{DropNew, ids(0, 40), 120, 0},
		// Segments of 10 records: the oldest go 10 at a time.
		{DropOldest, ids(60, 100), 0, 120},
	} {
		t.Run(tc.action.String(), func(t *testing.T) {
			s, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 40 * size, SegmentBytes: 10 * size, Action: tc.action, Memory: memory})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 100 {
				m := testMsg(i)
				err := s.Append(&m)
				if err != nil && !errors.Is(err, ErrFull) {
					t.Fatal(err)
				}
				s.Flush()
			}
			got := readAll(t, s, true)
			st := s.Stats()
			if !equal(got, tc.wantIDs) || st.DroppedNew != tc.new || st.DroppedOld != tc.old {
				t.Fatalf("read %v, stats %+v", got, st)
			}
			if st.Events != 2*st.Appended || st.Appended+st.DroppedNew/2 != 100 || uint64(len(got))+(st.DroppedNew+st.DroppedOld)/2 != 100 {
				t.Fatalf("not every event counted: read %d messages, %+v", len(got), st)
			}
		})
	}
}

// Block: Append waits until an acknowledgement frees a segment.
func TestSpoolBlock(t *testing.T) { fromMemoryAndDisk(t, testSpoolBlock) }

func testSpoolBlock(t *testing.T, memory int64) {
	size := testRecordSize()
	s, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 20 * size, SegmentBytes: 10 * size, Action: Block, Memory: memory})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error)
	go func() {
		for i := range 30 {
			m := testMsg(i)
			if err := s.Append(&m); err != nil {
				done <- err
				return
			}
			s.Flush()
		}
		done <- nil
	}()
	// Nothing is read yet: the writer must come to wait at the limit.
	testwait.Until(t, "Append blocked", func() (bool, any) { return s.Stats().Blocked > 0, s.Stats().Appended })
	if st := s.Stats(); st.Appended != 20 {
		t.Fatalf("took %d events beyond the limit", st.Appended)
	}
	var got []string
	for len(got) < 30 {
		m, pos, err := s.Next(true)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.ID)
		s.Ack(pos, m.ID)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !equal(got, ids(0, 30)) {
		t.Fatalf("order: %v", got)
	}
	if st := s.Stats(); st.Blocked == 0 || st.DroppedNew+st.DroppedOld != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// An acknowledgement that stands for messages of a segment DropOldest
// removed meanwhile counts only those still pending: every message is
// counted once, as acknowledged, dropped or pending.
func TestSpoolAckAfterDrop(t *testing.T) { fromMemoryAndDisk(t, testSpoolAckAfterDrop) }

func testSpoolAckAfterDrop(t *testing.T, memory int64) {
	size := testRecordSize()
	s, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 40 * size, SegmentBytes: 10 * size, Action: DropOldest, Memory: memory})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 40 {
		m := testMsg(i)
		if err := s.Append(&m); err != nil {
			t.Fatal(err)
		}
		s.Flush()
	}
	var pos Pos
	for range 25 { // sent, not yet acknowledged
		_, p, err := s.Next(false)
		if err != nil {
			t.Fatal(err)
		}
		pos = p
	}
	m := testMsg(40)
	if err := s.Append(&m); err != nil { // full: the oldest segment goes
		t.Fatal(err)
	}
	s.Flush()
	if st := s.Stats(); st.DroppedOld != 20 || st.Pending != 31 {
		t.Fatalf("after the drop: %+v", st)
	}
	s.Ack(pos, testMsg(24).ID) // one acknowledgement for the 25
	if st := s.Stats(); st.Pending != 16 {
		t.Fatalf("after the acknowledgement: %d pending, want 41-10-15: %+v", st.Pending, st)
	}
	if got := readAll(t, s, true); !equal(got, ids(25, 41)) {
		t.Fatalf("left: %v", got)
	}
	if st := s.Stats(); st.Pending != 0 {
		t.Fatalf("drained: %+v", st)
	}
}

// TestSpoolMemory: a message read from memory stays as it was until it is
// acknowledged, through a rewind, further writes and a DropOldest that
// removes it under the reader; acknowledged, its memory serves again.
func TestSpoolMemory(t *testing.T) {
	size := testRecordSize()
	s, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 40 * size, SegmentBytes: 10 * size, Action: DropOldest})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m := testMsg(i)
			if err := s.Append(&m); err != nil {
				t.Fatal(err)
			}
			s.Flush()
		}
	}
	type read struct {
		m   Msg
		pos Pos
	}
	next := func(n int) []read {
		t.Helper()
		var out []read
		for range n {
			m, pos, err := s.Next(false)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, read{m, pos})
		}
		return out
	}
	// intact checks that each message read is still the one written.
	intact := func(what string, rs []read, from int) {
		t.Helper()
		for i, r := range rs {
			if w := testMsg(from + i); r.m.ID != w.ID || string(r.m.Data) != string(w.Data) {
				t.Fatalf("%s: message %d is %q %q, want %q", what, from+i, r.m.ID, r.m.Data, w.Data)
			}
		}
	}
	write(0, 20)
	first := next(15)
	intact("read", first, 0)
	s.Rewind()
	again := next(15)
	intact("read again after a rewind", again, 0)
	write(20, 30)
	intact("after further writes", first, 0)
	s.Ack(first[9].pos, first[9].m.ID) // the first segment's ten
	write(30, 40)                      // may use the acknowledged memory
	intact("after writes once acknowledged", first[10:], 10)
	if st := s.Stats(); st.DroppedOld != 0 || s.keptBytes == 0 || len(s.spare)+len(s.kept) < 2 {
		t.Fatalf("spool %+v, %d bytes kept: want nothing dropped yet, memory in use", st, s.keptBytes)
	}
	write(40, 55) // full: DropOldest removes segments the reader is in
	if st := s.Stats(); st.DroppedOld == 0 {
		t.Fatalf("spool %+v: want segments dropped", st)
	}
	intact("after DropOldest removed them", first[10:], 10)
	rest := next(1)
	var from int
	if _, err := fmt.Sscanf(rest[0].m.ID, "h:b:%d.", &from); err != nil {
		t.Fatalf("read %q: %v", rest[0].m.ID, err)
	}
	rest = append(rest, next(54-from)...)
	intact("the rest", rest, from)
	if from < 15 {
		t.Fatalf("after the drop, read %s first", rest[0].m.ID)
	}
	s.Ack(rest[len(rest)-1].pos, rest[len(rest)-1].m.ID)
	if s.keptBytes != 0 || len(s.kept) != 0 {
		t.Fatalf("all acknowledged, %d bytes in %d writes still kept", s.keptBytes, len(s.kept))
	}
}
