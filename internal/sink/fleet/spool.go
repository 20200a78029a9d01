package fleet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Action is what the spool does with a message when it is full, as
// auditd's disk_full_action.
type Action uint8

const (
	// Block makes Append wait until publishing frees space: nothing is
	// lost, and the daemon's pipeline (and with it the kernel's backlog)
	// waits.
	Block Action = iota + 1
	// DropOldest removes the oldest segment not yet published, counting
	// the events of its messages as lost: the newest events are kept.
	DropOldest
	// DropNew refuses the message, counting its events as lost: the
	// oldest are kept.
	DropNew
)

// ParseAction reads block, drop_oldest or drop_new.
func ParseAction(s string) (Action, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop_oldest":
		return DropOldest, nil
	case "drop_new":
		return DropNew, nil
	}
	return 0, fmt.Errorf("fleet: spool action %q: want block, drop_oldest or drop_new", s)
}

func (a Action) String() string {
	switch a {
	case Block:
		return "block"
	case DropOldest:
		return "drop_oldest"
	case DropNew:
		return "drop_new"
	}
	return "unknown"
}

// ErrFull is returned by Append for a message the full spool refused
// (DropNew), or that a closed spool no longer takes.
var ErrFull = errors.New("fleet: spool full: message dropped")

// ErrClosed is returned by Next once the spool is closed.
var ErrClosed = errors.New("fleet: spool closed")

// SpoolConfig configures a Spool.
type SpoolConfig struct {
	Dir string
	// MaxBytes bounds the segments on disk and the bytes waiting to be
	// written; at the bound, Action applies.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one
	// started (default MaxBytes/8, at least 64 KiB).
	SegmentBytes int64
	Action       Action
	// Sync fsyncs each segment write (Flush) and each cursor save: a
	// machine crash then loses only what was not flushed. Without it a
	// crash of contid loses nothing flushed, a crash of the machine what
	// the kernel had not written back. (Of messages in the held form, the
	// lines are as safe as the host log's flush policy makes them.)
	Sync bool
	// LogDir and LogBase name the host log: the spool finds the files
	// its held messages refer to after a restart among the files of
	// LogDir whose names start with LogBase (its rotations LogBase.N,
	// logrotate's LogBase-DATE).
	LogDir, LogBase string
	// Memory bounds the bytes of recent messages also kept in memory,
	// ready to send (default DefaultMemory; negative: none).
	Memory int64
	Log    *slog.Logger
}

// SpoolStats counts what the spool did. A message (a record) holds the
// events of one subject in one pipeline batch (Msg.N); losses count
// events.
type SpoolStats struct {
	Appended    uint64 // messages taken
	Events      uint64 // events in them
	DroppedNew  uint64 // events in messages refused when full (DropNew, or closed)
	DroppedOld  uint64 // events in messages removed unpublished when full (DropOldest)
	Blocked     uint64 // Appends that waited for space (Block)
	Torn        uint64 // bytes cut off a torn segment end at open
	Bytes       int64  // on disk and waiting to be written
	Written     uint64 // bytes written since open
	Pending     uint64 // messages not yet acknowledged
	Segments    int
	WriteErrors uint64
	// Held is the bytes of host log files that messages in the held form
	// refer to (counted against MaxBytes with Bytes: a log removed while
	// held keeps its space until published); HeldFiles how many files
	// those are, kept open.
	Held      int64
	HeldFiles int
	// ReadBack counts held messages read back from the host log (not
	// from memory: the publisher was behind, or contid restarted).
	ReadBack uint64
	// Unreadable counts the events of held messages whose lines the host
	// log no longer had as written (removed, truncated, changed): not
	// published, lost.
	Unreadable uint64
}

// Lost is every event the spool took and will not publish: dropped when
// full, or no longer in the host log.
func (st SpoolStats) Lost() uint64 { return st.DroppedNew + st.DroppedOld + st.Unreadable }

// A Spool is the on-disk queue of messages between the pipeline and the
// stream: append-only segments DIR/<first>.seg of framed records
// (length, CRC-32C, message), and DIR/cursor naming the first record not
// yet acknowledged. Segments wholly before the cursor are removed. At
// open, a segment's torn end (a crash in a write) is cut at its last
// whole record. Append and Flush are for one goroutine (the writer),
// Next, Ack, Rewind and Seek for another (the publisher).
type Spool struct {
	cfg  SpoolConfig
	mu   sync.Mutex
	cond *sync.Cond // space freed, records flushed, closed

	segs   []*segment // oldest first; the last is written
	w      *os.File   // the last segment
	wbuf   []byte     // appended, not yet written
	wcount uint64     // records in wbuf
	// Messages kept in memory (keep.go): wkeep those of wbuf, kept those
	// written, oldest first, keptBytes their batch forms' bytes.
	wkeep      *keptWrite
	kept       []*keptWrite
	keptBytes  int64
	spare      []*keptWrite // let go, to be used again
	spareBytes int64
	closed     bool
	woken      bool // wake was called: a waiting Next returns ErrEmpty

	// Read position: the next record Next returns, and the number of
	// records of segment rseg before it.
	rseg  uint64
	roff  int64
	ridx  uint64
	rf    *os.File // open segment rseg
	rbuf  []byte   // bytes of rf from rbase
	rbase int64

	// Acknowledged: everything before (aseg, aoff).
	aseg      uint64
	aoff      int64
	lastAcked string
	dirty     bool // cursor not saved

	stats SpoolStats

	// The host log files held messages refer to, each held once by the
	// spool while a segment refers to it; hbuf caches bytes of hfile from
	// hbase for the reader, obuf is the batch form of the last held
	// message read.
	files     map[fileKey]*logFile
	hbuf      []byte
	hbase     int64
	hfile     *logFile
	obuf      []byte
	lostSeg   uint64 // Unreadable counted up to (lostSeg, lostOff)
	lostOff   int64
	warnedKey fileKey
}

type segment struct {
	first uint64 // name: the spool-wide number of its first record
	size  int64  // bytes written
	recs  uint64 // records written
	acked uint64 // records acknowledged (the first segment only)
	held  int64  // bytes of host log its held records refer to
	keys  []fileKey
}

func (s *segment) path(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.seg", s.first))
}

const frameHdr = 8 // u32 length of the message, u32 CRC-32C of it

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenSpool opens (creating) the spool in cfg.Dir and recovers what a
// previous run left: unacknowledged records are read again by Next.
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = max(cfg.MaxBytes/8, 64<<10)
	}
	if cfg.Action == 0 {
		cfg.Action = Block
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Memory == 0 {
		cfg.Memory = DefaultMemory
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: spool: %w", err)
	}
	s := &Spool{cfg: cfg, files: map[fileKey]*logFile{}, wkeep: &keptWrite{}}
	s.cond = sync.NewCond(&s.mu)
	names, err := filepath.Glob(filepath.Join(cfg.Dir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("fleet: spool: %w", err)
	}
	slices.Sort(names)
	for _, n := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".seg"), 16, 64)
		if err != nil {
			continue
		}
		seg := &segment{first: first}
		if err := s.recover(seg); err != nil {
			return nil, err
		}
		s.segs = append(s.segs, seg)
	}
	s.loadCursor()
	if len(s.segs) == 0 {
		s.segs = append(s.segs, &segment{first: 0})
	}
	// The cursor names a removed segment: start at the oldest kept.
	if s.aseg < s.segs[0].first || s.index(s.aseg) < 0 {
		s.aseg, s.aoff = s.segs[0].first, 0
	}
	if s.segs[0].first == s.aseg {
		s.segs[0].acked = s.countTo(s.segs[0], s.aoff)
	}
	last := s.segs[len(s.segs)-1]
	if s.w, err = os.OpenFile(last.path(cfg.Dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("fleet: spool: %w", err)
	}
	s.rseg, s.roff, s.ridx = s.aseg, s.aoff, s.segs[0].acked
	if s.segs[0].first != s.aseg { // a crash after a cursor save, before a removal
		s.ridx = s.countTo(s.segs[s.index(s.aseg)], s.aoff)
	}
	for _, g := range s.segs {
		s.stats.Bytes += g.size
		s.stats.Held += g.held
		s.stats.Pending += g.recs
	}
	s.stats.Pending -= s.segs[0].acked
	s.stats.Segments = len(s.segs)
	return s, nil
}

// recover reads a segment's records, counting them, and cuts a torn end.
func (s *Spool) recover(seg *segment) error {
	p := seg.path(s.cfg.Dir)
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("fleet: spool: %w", err)
	}
	off := 0
	for {
		msg, n, ok := frame(b[off:])
		if !ok {
			break
		}
		if m, ok := decode(msg); ok && m.held {
			seg.addHeld(m.key, heldBytes(m.Data))
		}
		off += n
		seg.recs++
	}
	if off < len(b) {
		s.stats.Torn += uint64(len(b) - off)
		if err := os.Truncate(p, int64(off)); err != nil {
			return fmt.Errorf("fleet: spool: cut torn end: %w", err)
		}
	}
	seg.size = int64(off)
	return nil
}

// addHeld notes a held record of the segment.
func (g *segment) addHeld(k fileKey, n int64) {
	g.held += n
	if !slices.Contains(g.keys, k) {
		g.keys = append(g.keys, k)
	}
}

// countTo counts the records of seg before off.
func (s *Spool) countTo(seg *segment, off int64) uint64 {
	b, err := os.ReadFile(seg.path(s.cfg.Dir))
	if err != nil {
		return 0
	}
	var n uint64
	for o := 0; int64(o) < off; {
		_, k, ok := frame(b[o:])
		if !ok {
			break
		}
		o += k
		n++
	}
	return n
}

// eventsFrom counts the events of seg's messages from off on.
func (s *Spool) eventsFrom(seg *segment, off int64) uint64 {
	b, err := os.ReadFile(seg.path(s.cfg.Dir))
	if err != nil || off > int64(len(b)) {
		return 0
	}
	var n uint64
	for b = b[off:]; ; {
		msg, k, ok := frame(b)
		if !ok {
			return n
		}
		if m, ok := decode(msg); ok {
			n += m.N
		}
		b = b[k:]
	}
}

// frame returns the message of the record at the start of b and the
// record's length; ok is false for a short or damaged record.
func frame(b []byte) (msg []byte, n int, ok bool) {
	if len(b) < frameHdr {
		return nil, 0, false
	}
	l := int(binary.LittleEndian.Uint32(b))
	if l > len(b)-frameHdr {
		return nil, 0, false
	}
	msg = b[frameHdr : frameHdr+l]
	if crc32.Checksum(msg, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, false
	}
	return msg, frameHdr + l, true
}

func (s *Spool) loadCursor() {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, "cursor"))
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return
	}
	seg, err1 := strconv.ParseUint(f[0], 16, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	if i := s.index(seg); i >= 0 && off > s.segs[i].size {
		off = s.segs[i].size
	}
	s.aseg, s.aoff = seg, off
	if len(f) > 2 {
		s.lastAcked = f[2]
	}
}

// index returns the position of the segment named first in s.segs, or -1.
func (s *Spool) index(first uint64) int {
	for i, g := range s.segs {
		if g.first == first {
			return i
		}
	}
	return -1
}

// LastAcked is the id of the last message acknowledged, as saved.
func (s *Spool) LastAcked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAcked
}

// Append takes one message; it is written at the next Flush (or when
// 256 KiB wait). It returns ErrFull when the message was refused.
func (s *Spool) Append(m *Msg) error {
	n := frameHdr + 4 + len(m.ID) + len(m.Subject) + len(m.Data)
	var held int64
	if m.held {
		n += 2 + heldHdr
		held = heldBytes(m.Data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.room(int64(n)+held) {
		s.stats.DroppedNew += m.N
		return ErrFull
	}
	start := len(s.wbuf)
	s.wbuf = append(s.wbuf, 0, 0, 0, 0, 0, 0, 0, 0)
	if m.held {
		// A length no id has marks the held form.
		s.wbuf = binary.LittleEndian.AppendUint16(s.wbuf, heldMark)
		s.wbuf = binary.LittleEndian.AppendUint64(s.wbuf, m.key.Dev)
		s.wbuf = binary.LittleEndian.AppendUint64(s.wbuf, m.key.Ino)
		s.wbuf = binary.LittleEndian.AppendUint32(s.wbuf, uint32(m.N))
		if lf := s.files[m.key]; lf == nil || lf.f == nil {
			// New, or known only as not found (a removed log whose inode
			// the file written now reuses).
			if lf != nil {
				lf.release()
			}
			m.log.hold()
			s.files[m.key] = m.log
			s.stats.HeldFiles = len(s.files)
		}
		s.segs[len(s.segs)-1].addHeld(m.key, held)
		s.stats.Held += held
	}
	s.wbuf = binary.LittleEndian.AppendUint16(s.wbuf, uint16(len(m.ID)))
	s.wbuf = append(s.wbuf, m.ID...)
	s.wbuf = binary.LittleEndian.AppendUint16(s.wbuf, uint16(len(m.Subject)))
	s.wbuf = append(s.wbuf, m.Subject...)
	s.wbuf = append(s.wbuf, m.Data...)
	msg := s.wbuf[start+frameHdr:]
	binary.LittleEndian.PutUint32(s.wbuf[start:], uint32(len(msg)))
	binary.LittleEndian.PutUint32(s.wbuf[start+4:], crc32.Checksum(msg, castagnoli))
	if m.inline != nil || !m.held {
		s.wkeep.keep(start, len(s.wbuf), m)
	}
	s.wcount++
	s.stats.Appended++
	s.stats.Events += m.N
	s.stats.Pending++
	s.stats.Bytes += int64(n)
	if len(s.wbuf) >= 256<<10 {
		return s.flush()
	}
	return nil
}

// room makes room for n bytes as the Action says; false: drop the new.
func (s *Spool) room(n int64) bool {
	for s.stats.Bytes+s.stats.Held+n > s.cfg.MaxBytes {
		if s.closed {
			return false
		}
		switch s.cfg.Action {
		case DropNew:
			return false
		case DropOldest:
			if !s.dropOldest() {
				return false
			}
		default:
			s.stats.Blocked++
			if s.flush() != nil {
				return false
			}
			s.cond.Wait()
		}
	}
	return true
}

// dropOldest removes the oldest segment, unless it is the one written.
func (s *Spool) dropOldest() bool {
	if len(s.segs) < 2 {
		if s.flush() != nil || len(s.segs) < 2 {
			return false
		}
	}
	g := s.segs[0]
	lost := g.recs - g.acked
	from := int64(0)
	if g.first == s.aseg {
		from = s.aoff
	}
	s.stats.DroppedOld += s.eventsFrom(g, from)
	s.stats.Pending -= lost
	s.forget(g.first, math.MaxInt64, false) // the reader may be sending one
	s.removeFirst()
	next := s.segs[0].first
	s.aseg, s.aoff = next, 0
	if s.rseg == g.first {
		s.closeReader()
		s.rseg, s.roff, s.ridx = next, 0, 0
	}
	s.dirty = true
	return true
}

func (s *Spool) removeFirst() {
	g := s.segs[0]
	if err := os.Remove(g.path(s.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.stats.WriteErrors++
	}
	s.stats.Bytes -= g.size
	s.stats.Held -= g.held
	s.segs = s.segs[1:]
	s.stats.Segments = len(s.segs)
	for _, k := range g.keys {
		if !slices.ContainsFunc(s.segs, func(o *segment) bool { return slices.Contains(o.keys, k) }) {
			s.letGo(k)
		}
	}
}

// letGo closes the spool's hold on a host log file no record refers to.
func (s *Spool) letGo(k fileKey) {
	lf := s.files[k]
	if lf == nil {
		return
	}
	if s.hfile == lf {
		s.hfile, s.hbuf = nil, s.hbuf[:0]
	}
	delete(s.files, k)
	lf.release()
	s.stats.HeldFiles = len(s.files)
}

// Flush writes what Append took to the current segment and wakes Next.
func (s *Spool) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flush()
}

func (s *Spool) flush() error {
	if len(s.wbuf) == 0 {
		return nil
	}
	last := s.segs[len(s.segs)-1]
	n, err := s.w.Write(s.wbuf)
	if err == nil && s.cfg.Sync {
		err = s.w.Sync()
	}
	if err != nil {
		// Keep the whole records written; the rest stays buffered.
		s.stats.WriteErrors++
		whole := 0
		for whole < n {
			_, k, ok := frame(s.wbuf[whole:n])
			if !ok {
				break
			}
			whole += k
			last.recs++
			s.wcount--
		}
		if whole < n {
			_ = s.w.Truncate(last.size + int64(whole))
		}
		last.size += int64(whole)
		s.wbuf = s.wbuf[:copy(s.wbuf, s.wbuf[whole:])]
		s.wkeep.msgs = s.wkeep.msgs[:0] // their records moved in wbuf: read from disk instead
		s.cond.Broadcast()
		return fmt.Errorf("fleet: spool write: %w", err)
	}
	s.written(last.first, last.size, int64(n))
	s.wbuf = s.wbuf[:0]
	last.size += int64(n)
	s.stats.Written += uint64(n)
	last.recs += s.wcount
	s.wcount = 0
	if last.size+last.held >= s.cfg.SegmentBytes { // held bytes too: each segment a bounded share of MaxBytes
		next := &segment{first: last.first + last.recs}
		f, err := os.OpenFile(next.path(s.cfg.Dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			s.stats.WriteErrors++
		} else {
			s.w.Close()
			s.w = f
			s.segs = append(s.segs, next)
			s.stats.Segments = len(s.segs)
		}
	}
	s.cond.Broadcast()
	return nil
}

// Pos is the place after a record: what Ack takes.
type Pos struct {
	Seg uint64
	Off int64
	Rec uint64 // records of segment Seg up to Off
}

// ErrEmpty is returned by Next without wait when nothing is left to read.
var ErrEmpty = errors.New("fleet: spool: nothing to read")

// Next returns the next message after the read position, waiting for one
// to be flushed if wait (else ErrEmpty); ErrClosed once the spool is
// closed and nothing is left to read. Msg.Data is valid until the next
// call.
func (s *Spool) Next(wait bool) (Msg, Pos, error) { return s.next(wait, true) }

// next is Next; without resolve, a held message's Data stays in the held
// form (Seek looks at ids only).
func (s *Spool) next(wait, resolve bool) (Msg, Pos, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		i := s.index(s.rseg)
		if i < 0 { // removed under the reader (DropOldest)
			s.closeReader()
			s.rseg, s.roff, s.ridx = s.segs[0].first, 0, 0
			continue
		}
		g := s.segs[i]
		if m, end, ok := s.fromMemory(s.rseg, s.roff); ok {
			s.roff = end
			s.ridx++
			return m, Pos{s.rseg, s.roff, s.ridx}, nil
		}
		if s.roff < g.size {
			m, n, err := s.read(g)
			if err != nil {
				return Msg{}, Pos{}, err
			}
			at := s.roff
			s.roff += int64(n)
			s.ridx++
			if m.held && resolve {
				if err := s.resolve(&m); err != nil {
					s.unreadable(m, at, err)
					continue
				}
			}
			return m, Pos{s.rseg, s.roff, s.ridx}, nil
		}
		if i+1 < len(s.segs) {
			s.closeReader()
			s.rseg, s.roff, s.ridx = s.segs[i+1].first, 0, 0
			continue
		}
		if s.closed {
			return Msg{}, Pos{}, ErrClosed
		}
		if !wait || s.woken {
			s.woken = false
			return Msg{}, Pos{}, ErrEmpty
		}
		s.cond.Wait()
	}
}

// More reports whether a record is there to read without waiting.
func (s *Spool) More() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.index(s.rseg)
	if i < 0 {
		return true // Next moves on to the oldest kept
	}
	if s.roff < s.segs[i].size {
		return true
	}
	for _, g := range s.segs[i+1:] {
		if g.size > 0 {
			return true
		}
	}
	return false
}

// read decodes the record at the read position of segment g.
func (s *Spool) read(g *segment) (Msg, int, error) {
	if s.rf == nil {
		f, err := os.Open(g.path(s.cfg.Dir))
		if err != nil {
			return Msg{}, 0, fmt.Errorf("fleet: spool read: %w", err)
		}
		s.rf, s.rbuf, s.rbase = f, s.rbuf[:0], s.roff
	}
	rel := s.roff - s.rbase
	if rel < 0 || rel > int64(len(s.rbuf)) {
		s.rbuf, s.rbase, rel = s.rbuf[:0], s.roff, 0
	}
	for {
		if msg, n, ok := frame(s.rbuf[rel:]); ok {
			m, ok := decode(msg)
			if !ok {
				return Msg{}, 0, fmt.Errorf("fleet: spool read %s at %d: bad record", g.path(s.cfg.Dir), s.roff)
			}
			return m, n, nil
		}
		// Refill: keep the unread part, read up to the flushed size.
		s.rbuf = s.rbuf[:copy(s.rbuf, s.rbuf[rel:])]
		s.rbase += rel
		rel = 0
		want := min(g.size-s.rbase, 1<<20)
		if want <= int64(len(s.rbuf)) {
			return Msg{}, 0, fmt.Errorf("fleet: spool read %s at %d: bad record", g.path(s.cfg.Dir), s.roff)
		}
		if int64(cap(s.rbuf)) < want {
			s.rbuf = slices.Grow(s.rbuf, int(want)-len(s.rbuf))
		}
		at := s.rbase + int64(len(s.rbuf))
		k, err := s.rf.ReadAt(s.rbuf[len(s.rbuf):want], at)
		s.rbuf = s.rbuf[:len(s.rbuf)+k]
		if k == 0 && err != nil && err != io.EOF {
			return Msg{}, 0, fmt.Errorf("fleet: spool read: %w", err)
		}
	}
}

func decode(b []byte) (Msg, bool) {
	var m Msg
	if len(b) < 2 {
		return m, false
	}
	l := int(binary.LittleEndian.Uint16(b))
	if l == heldMark {
		if len(b) < 2+heldHdr {
			return m, false
		}
		m.held = true
		m.key = fileKey{binary.LittleEndian.Uint64(b[2:]), binary.LittleEndian.Uint64(b[10:])}
		m.N = uint64(binary.LittleEndian.Uint32(b[18:]))
		b = b[2+heldHdr:]
		if len(b) < 2 {
			return m, false
		}
		l = int(binary.LittleEndian.Uint16(b))
	}
	if len(b) < 2+l+2 {
		return m, false
	}
	m.ID = string(b[2 : 2+l])
	b = b[2+l:]
	l = int(binary.LittleEndian.Uint16(b))
	if len(b) < 2+l {
		return m, false
	}
	m.Subject = string(b[2 : 2+l])
	m.Data = b[2+l:]
	if m.held {
		return m, heldBytes(m.Data) >= 0
	}
	m.N = batchEvents(m.Data)
	return m, true
}

func (s *Spool) closeReader() {
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	s.rbuf = s.rbuf[:0]
}

// Ack marks everything up to p as published; id is the last message's.
// Segments wholly acknowledged are removed (the cursor saved first).
//
// What is acknowledged is counted from p (the records of its segment up
// to it), not from how many were sent: those of a segment DropOldest
// removed meanwhile were counted then.
func (s *Spool) Ack(p Pos, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index(p.Seg) < 0 {
		return // dropped meanwhile (DropOldest), already counted
	}
	s.aseg, s.aoff, s.lastAcked = p.Seg, p.Off, id
	s.dirty = true
	s.forget(p.Seg, p.Off, true)
	for s.segs[0].first < p.Seg {
		g := s.segs[0]
		s.stats.Pending -= g.recs - g.acked
		s.saveCursor()
		s.removeFirst()
		s.cond.Broadcast()
	}
	if g := s.segs[0]; p.Rec > g.acked {
		s.stats.Pending -= p.Rec - g.acked
		g.acked = p.Rec
	}
	if g := s.segs[0]; len(s.segs) > 1 && s.aoff == g.size {
		// Wholly published: move the cursor on and remove it.
		s.aseg, s.aoff = s.segs[1].first, 0
		s.stats.Pending -= g.recs - g.acked
		s.saveCursor()
		s.removeFirst()
		s.cond.Broadcast()
	}
}

// Rewind sets the read position back to the first unacknowledged record.
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rseg != s.aseg {
		s.closeReader()
	}
	s.rseg, s.roff, s.ridx = s.aseg, s.aoff, 0
	if i := s.index(s.aseg); i >= 0 {
		s.ridx = s.segs[i].acked
	}
}

// Save writes the cursor if it moved.
func (s *Spool) Save() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saveCursor()
}

func (s *Spool) saveCursor() {
	if !s.dirty {
		return
	}
	s.dirty = false
	p := filepath.Join(s.cfg.Dir, "cursor")
	b := fmt.Appendf(nil, "%016x %d %s\n", s.aseg, s.aoff, s.lastAcked)
	f, err := os.Create(p + ".tmp")
	if err == nil {
		_, err = f.Write(b)
		if err == nil && s.cfg.Sync {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(p+".tmp", p)
	}
	if err != nil {
		s.stats.WriteErrors++
	}
}

// Stats returns the counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close flushes, saves the cursor and wakes every waiter; Next then
// returns what is left and ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flush()
	s.saveCursor()
	s.closed = true
	s.cond.Broadcast()
	s.closeReader()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	return err
}

// wake wakes a Next waiting for records (the publisher stops or failed).
func (s *Spool) wake() {
	s.mu.Lock()
	s.woken = true
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Seek moves the cursor and the read position past the message id if it
// is among the records not yet acknowledged, returning how many it
// skipped; else it leaves both at the cursor.
func (s *Spool) Seek(id string) (uint64, bool) {
	s.Rewind()
	var n uint64
	for {
		m, pos, err := s.next(false, false)
		if err != nil {
			s.Rewind()
			return 0, false
		}
		n++
		if m.ID == id {
			s.Ack(pos, id)
			return n, true
		}
	}
}
