package fleet

import (
	"cmp"
	"slices"
)

// The spool keeps the messages of its recent writes in memory as well as
// on disk, in the batch form the publisher sends: a publisher keeping up,
// or sending again from the last acknowledgement after a failure, takes
// them from memory and reads neither the spool nor the host log back, nor
// copies them. A write is kept whole or not at all, while the kept bytes
// stay within SpoolConfig.Memory; what is not kept is read from disk when
// its turn comes. A kept write is let go once acknowledged (its buffers
// used again) or when DropOldest removes its segment.

// DefaultMemory is SpoolConfig.Memory's default.
const DefaultMemory = 8 << 20

// keptWrite is one write's messages: the records of segment seg in
// [from, to), each message's batch form in data.
type keptWrite struct {
	seg      uint64
	from, to int64
	data     []byte
	msgs     []keptMsg
}

type keptMsg struct {
	at, end     int64 // the record; within the write until it is written
	id, subject string
	n           uint64
	from, to    int // its batch form in data
}

// keep notes the message of the record [at, end) of the write being
// made, with its batch form: in place when the encoder made it in the
// write's buffer (Spool.forms), else copied.
func (w *keptWrite) keep(at, end int, m *Msg) {
	form, from := m.inline, m.formAt
	if form == nil { // not from an encoder: a message not held is its batch form
		form, from = m.Data, -1
	}
	if len(form) == 0 || from < 0 || from+len(form) > len(w.data) || &w.data[from] != &form[0] {
		from = len(w.data)
		w.data = append(w.data, form...)
	}
	w.msgs = append(w.msgs, keptMsg{int64(at), int64(end), m.ID, m.Subject, m.N, from, from + len(form)})
}

func (w *keptWrite) reset() { w.data, w.msgs = w.data[:0], w.msgs[:0] }

// forms is the buffer for the batch forms of the messages about to be
// appended (Encoder.FlushForms): those of the write being made, so that
// keeping them copies nothing. Its bytes are not rewritten before the
// next call, whatever becomes of the write: messages of one batch may go
// to two writes. For the writer's goroutine, as Append.
func (s *Spool) forms() *[]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.wkeep.msgs) == 0 {
		s.wkeep.data = s.wkeep.data[:0]
		if cap(s.wkeep.data) > DefaultMemory {
			s.wkeep.data = nil // a batch far above the usual: not kept
		}
	}
	return &s.wkeep.data
}

// written keeps the write being made (s.wkeep), now bytes [off, off+n)
// of segment seg, if it fits in memory. Called with s.mu held.
func (s *Spool) written(seg uint64, off, n int64) {
	w := s.wkeep
	if len(w.msgs) == 0 {
		return
	}
	if s.keptBytes+int64(len(w.data)) > s.cfg.Memory {
		w.msgs = w.msgs[:0] // its data is reset by forms
		return
	}
	w.seg, w.from, w.to = seg, off, off+n
	for i := range w.msgs {
		w.msgs[i].at += off
		w.msgs[i].end += off
	}
	s.kept = append(s.kept, w)
	s.keptBytes += int64(len(w.data))
	s.wkeep = s.spareWrite()
}

func (s *Spool) spareWrite() *keptWrite {
	n := len(s.spare)
	if n == 0 {
		return &keptWrite{}
	}
	w := s.spare[n-1] // the last let go: the most likely still in the CPU's cache
	s.spare = s.spare[:n-1]
	s.spareBytes -= int64(cap(w.data))
	return w
}

// fromMemory returns the message of the record at (seg, off) and where
// the record ends, if it is kept. Its Data stays valid until the record
// is acknowledged. Called with s.mu held.
func (s *Spool) fromMemory(seg uint64, off int64) (Msg, int64, bool) {
	// The kept writes are in the order written: by segment, then offset.
	i, ok := slices.BinarySearchFunc(s.kept, off, func(w *keptWrite, off int64) int {
		switch {
		case w.seg != seg:
			return cmp.Compare(w.seg, seg)
		case w.to <= off:
			return -1
		case w.from > off:
			return 1
		}
		return 0
	})
	if !ok {
		return Msg{}, 0, false
	}
	w := s.kept[i]
	j, ok := slices.BinarySearchFunc(w.msgs, off, func(k keptMsg, off int64) int { return cmp.Compare(k.at, off) })
	if !ok {
		return Msg{}, 0, false
	}
	k := w.msgs[j]
	return Msg{ID: k.id, Subject: k.subject, N: k.n, Data: w.data[k.from:k.to:k.to]}, k.end, true
}

// forget lets go of the kept writes wholly before (seg, off); reuse says
// their buffers may be used again (every message in them was sent: what
// an acknowledgement proves; not so for a segment DropOldest removed
// under the reader). Called with s.mu held.
func (s *Spool) forget(seg uint64, off int64, reuse bool) {
	n := 0
	for _, w := range s.kept {
		if w.seg > seg || w.seg == seg && w.to > off {
			break
		}
		s.keptBytes -= int64(len(w.data))
		if reuse && s.spareBytes+int64(cap(w.data)) <= s.cfg.Memory {
			// Used again, not made anew: a write's buffer, written once
			// per batch, costs the kernel's page faults when it is new.
			w.reset()
			s.spare = append(s.spare, w)
			s.spareBytes += int64(cap(w.data))
		}
		n++
	}
	s.kept = slices.Delete(s.kept, 0, n)
}
