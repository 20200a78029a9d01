package fleet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// The stream route does not write an event a second time when the host
// log holds it: the spool keeps, per message, the place of each event's
// lines in the host log file (its device and inode, offset and length;
// the held form, see Msg) and the publisher reads them back from the
// file, most often from the page cache. A log file is kept open while
// the spool refers to it, so logrotate's rename and contid's own
// rotation, which may remove the oldest log, take nothing from the
// publisher; after a restart the spool finds its files again by device
// and inode in the log directory. Lines that are not there any more (a
// log removed while contid was down, truncated by copytruncate, changed)
// fail the check of what is read (eventLines): the message is not
// published and its events are counted lost (SpoolStats.Unreadable),
// never sent wrong.

// fileKey names a log file for the life of its inode.
type fileKey struct{ Dev, Ino uint64 }

func keyOf(f *os.File) (fileKey, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileKey{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return fileKey{}, errors.New("fleet: not a regular file")
	}
	return fileKey{uint64(st.Dev), st.Ino}, nil
}

// logFile is a read-only descriptor of a host log file, shared by the
// Places that found it and the spool records that refer to it; it is
// closed when the last holder lets go. f is nil for a file not found.
type logFile struct {
	key  fileKey
	f    *os.File
	mu   sync.Mutex
	refs int
}

func (l *logFile) hold() {
	l.mu.Lock()
	l.refs++
	l.mu.Unlock()
}

func (l *logFile) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refs--; l.refs == 0 && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// readHandle opens f, a descriptor the host log writes through, again
// for reading: through /proc/self/fd, which names f's inode whatever its
// path now, or else by its name, checked to be the same file.
func readHandle(f *os.File) (*logFile, error) {
	key, err := keyOf(f)
	if err != nil {
		return nil, err
	}
	var r *os.File
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			r, _ = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_NOCTTY, 0)
		})
	}
	if r == nil {
		if r, err = os.OpenFile(f.Name(), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0); err != nil {
			return nil, err
		}
	}
	if k, err := keyOf(r); err != nil || k != key {
		r.Close()
		return nil, fmt.Errorf("fleet: %s: not the file written", f.Name())
	}
	return &logFile{key: key, f: r, refs: 1}, nil
}

// findLog opens the file of dir whose name starts with base (audit.log,
// contid's audit.log.N, logrotate's audit.log-20261204) and whose key is
// key; nil when there is none.
func findLog(dir, base string, key fileKey) *os.File {
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, base) || !e.Type().IsRegular() {
			continue
		}
		// O_NONBLOCK: a FIFO put in the file's place does not hang the
		// open (keyOf then refuses it).
		f, err := os.OpenFile(filepath.Join(dir, n), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if k, err := keyOf(f); err == nil && k == key {
			return f
		}
		f.Close()
	}
	return nil
}

// Places learns where the output's host blocks land in the host log: it
// is the Output's HostPlacer and the host log's Observer. Told of block
// n (Block) and then that exactly those bytes reached file f at off
// (Appended), it keeps the block's place until Forget. A block that did
// not land whole in one write (a full disk's queue, a rotation in it,
// another flush policy's buffer) gets no place: its events are spooled
// whole. Safe for concurrent use.
type Places struct {
	mu      sync.Mutex
	want    uint64
	wantBuf []byte
	cur     *logFile // read handle of curF
	curF    *os.File
	placed  []place
	closed  bool // nothing is placed any more
}

type place struct {
	block uint64
	lf    *logFile // held
	off   int64
}

// Block is told that buf, host block n, is about to be written.
func (p *Places) Block(n uint64, buf []byte) {
	p.mu.Lock()
	p.want, p.wantBuf = n, buf
	p.mu.Unlock()
}

// Appended: data is now in f at off.
func (p *Places) Appended(f *os.File, off int64, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	whole := len(data) == len(p.wantBuf) && len(data) > 0 && unsafe.SliceData(data) == unsafe.SliceData(p.wantBuf)
	p.wantBuf = nil
	if !whole || p.closed {
		return
	}
	if p.curF != f {
		p.retire()
		lf, err := readHandle(f)
		if err != nil {
			return // no place: the messages are copied into the spool
		}
		p.cur, p.curF = lf, f
	}
	p.cur.hold()
	p.placed = append(p.placed, place{p.want, p.cur, off})
}

// Retiring: f is closed by the writer.
func (p *Places) Retiring(f *os.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.curF == f {
		p.retire()
	}
}

func (p *Places) retire() {
	if p.cur != nil {
		p.cur.release()
	}
	p.cur, p.curF = nil, nil
}

// where returns the file and offset of block n, if it landed whole.
func (p *Places) where(n uint64) (*logFile, int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.placed) - 1; i >= 0; i-- {
		if p.placed[i].block == n {
			return p.placed[i].lf, p.placed[i].off, true
		}
	}
	return nil, 0, false
}

// Forget lets go of the places learnt so far.
func (p *Places) Forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pl := range p.placed {
		pl.lf.release()
	}
	p.placed = p.placed[:0]
}

// Close lets go of everything; later blocks get no place (the route is
// closed while the host log writes on).
func (p *Places) Close() {
	p.Forget()
	p.mu.Lock()
	p.retire()
	p.closed = true
	p.mu.Unlock()
}

// heldMark, in place of a spool record's id length, marks the held form;
// heldHdr bytes follow it: the log file's device and inode, and the
// number of events.
const (
	heldMark = 0xffff
	heldHdr  = 8 + 8 + 4
)

// walkHeld walks a held form: it gives head (when not nil) the form's
// head, the batch form's first line, then frame each frame's inline
// bytes (frame line and JSON line) and the offset and length of its lines
// in the log file. ok is false when the form is damaged; frame's error
// stops the walk.
func walkHeld(b []byte, head func([]byte), frame func(inline []byte, off int64, n int) error) (ok bool, err error) {
	if len(b) < 4 {
		return false, nil
	}
	h := int(binary.LittleEndian.Uint32(b))
	if h > len(b)-4 {
		return false, nil
	}
	if head != nil {
		head(b[4 : 4+h])
	}
	for b = b[4+h:]; len(b) > 0; {
		if len(b) < 4 {
			return false, nil
		}
		l := int(binary.LittleEndian.Uint32(b))
		if l > len(b)-4-12 {
			return false, nil
		}
		inline, place := b[4:4+l], b[4+l:]
		b = place[12:]
		if err := frame(inline, int64(binary.LittleEndian.Uint64(place)), int(binary.LittleEndian.Uint32(place[8:]))); err != nil {
			return true, err
		}
	}
	return true, nil
}

// heldBytes is the number of log bytes a held form's frames refer to; -1
// when it is damaged.
func heldBytes(b []byte) int64 {
	var n int64
	if ok, _ := walkHeld(b, nil, func(_ []byte, _ int64, k int) error { n += int64(k); return nil }); !ok {
		return -1
	}
	return n
}

// heldRead is the most the reader reads of a log file at once.
const heldRead = 1 << 20

// resolve turns a held message's Data into the batch form, reading its
// events' lines from the log file and checking them. Called with s.mu
// held; Data is valid until the next call.
func (s *Spool) resolve(m *Msg) error {
	lf := s.files[m.key]
	if lf == nil {
		// Not held since this run began (a restart): find it.
		lf = &logFile{key: m.key, f: findLog(s.cfg.LogDir, s.cfg.LogBase, m.key), refs: 1}
		s.files[m.key] = lf
		s.stats.HeldFiles = len(s.files)
	}
	if lf.f == nil {
		return fmt.Errorf("host log file %d:%d not found in %s", m.key.Dev, m.key.Ino, s.cfg.LogDir)
	}
	out := s.obuf[:0]
	_, err := walkHeld(m.Data, func(head []byte) { out = append(out, head...) }, func(inline []byte, off int64, n int) error {
		lines, err := s.readLog(lf, off, n)
		if err == nil && !eventLines(inline, lines) {
			err = fmt.Errorf("host log file %d:%d holds other lines at %d (%d bytes)", m.key.Dev, m.key.Ino, off, n)
		}
		out = append(append(out, inline...), lines...)
		return err
	})
	if err != nil {
		s.obuf = out
		return err
	}
	s.obuf = out
	m.Data, m.held = out, false
	s.stats.ReadBack++
	return nil
}

// eventLines reports whether lines, read from the log, are the lines of
// the event of a held frame: inline is its frame line ("<index>
// <identity> <size>\n", the identity host:boot:SEC.MSEC:SERIAL[:hash])
// and JSON line if any. The size must be theirs; the lines whole, the
// first and the last with the event's stamp. A log truncated and written
// anew (copytruncate), or changed, has other events at the offset: a
// cheap check that needs no checksum of every event.
func eventLines(inline, lines []byte) bool {
	nl := bytes.IndexByte(inline, '\n')
	if nl < 0 || len(lines) == 0 || lines[len(lines)-1] != '\n' {
		return false
	}
	fl := inline[:nl]
	sp1 := bytes.IndexByte(fl, ' ')
	sp2 := bytes.LastIndexByte(fl, ' ')
	if sp1 < 0 || sp2 <= sp1 {
		return false
	}
	size := 0
	for _, c := range fl[sp2+1:] {
		if c < '0' || c > '9' || size > 1<<31 {
			return false
		}
		size = size*10 + int(c-'0')
	}
	if sp2+1 == len(fl) || size != len(inline)-nl-1+len(lines) {
		return false
	}
	// SEC.MSEC:SERIAL: the third and fourth of the identity's fields.
	id := fl[sp1+1 : sp2]
	from := 0
	for range 2 {
		i := bytes.IndexByte(id[from:], ':')
		if i < 0 {
			return false
		}
		from += i + 1
	}
	to := len(id)
	if i := bytes.IndexByte(id[from:], ':'); i < 0 {
		return false
	} else if j := bytes.IndexByte(id[from+i+1:], ':'); j >= 0 {
		to = from + i + 1 + j
	}
	var buf [64]byte
	if to-from > len(buf)-7 {
		return false
	}
	st := append(append(append(buf[:0], "audit("...), id[from:to]...), ')')
	first := lines[:bytes.IndexByte(lines, '\n')]
	last := lines[bytes.LastIndexByte(lines[:len(lines)-1], '\n')+1:]
	return bytes.Contains(first, st) && bytes.Contains(last, st)
}

// readLog returns n bytes of lf from off, through a cache of what was
// read last (a batch's messages refer to one stretch of the log).
func (s *Spool) readLog(lf *logFile, off int64, n int) ([]byte, error) {
	if s.hfile == lf && off >= s.hbase && off+int64(n) <= s.hbase+int64(len(s.hbuf)) {
		return s.hbuf[off-s.hbase : off-s.hbase+int64(n)], nil
	}
	want := max(n, heldRead)
	if cap(s.hbuf) < want {
		s.hbuf = make([]byte, want)
	}
	s.hbuf = s.hbuf[:want]
	k, err := lf.f.ReadAt(s.hbuf, off)
	s.hbuf, s.hbase, s.hfile = s.hbuf[:k], off, lf
	if k < n {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("host log file %d:%d ends before %d", lf.key.Dev, lf.key.Ino, off+int64(n))
		}
		return nil, err
	}
	return s.hbuf[:n], nil
}

// unreadable counts a held message the log no longer has as lost, once
// (a rewind reads it again), and warns once per file.
func (s *Spool) unreadable(m Msg, at int64, err error) {
	if s.rseg < s.lostSeg || s.rseg == s.lostSeg && at < s.lostOff {
		return
	}
	s.lostSeg, s.lostOff = s.rseg, at+1
	s.stats.Unreadable += m.N
	if s.warnedKey != m.key {
		s.warnedKey = m.key
		s.cfg.Log.Warn("fleet: spooled events no longer in the host log; counted lost", "id", m.ID, "events", m.N, "err", err)
	}
}
