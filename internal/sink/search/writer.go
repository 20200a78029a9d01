package search

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/contid/contid/internal/records"
)

// fileIndex is the index of one log file being written: a Grouper and a
// Builder fed with the file's lines in order, from the point its sidecar
// covered when it was opened.
type fileIndex struct {
	path   string // the log's path when opened: the sidecar goes beside it
	f      *os.File
	g      *Grouper
	b      *Builder
	off    int64 // offset of the next line
	synced int64 // off at the last sidecar write (-1: never)
}

// openFileIndex starts the index of the log f (opened at path) from its
// sidecar when sound, else from the start. It does not read the bytes after
// what the sidecar covers: catchUp does.
func openFileIndex(path string, f *os.File, blockSize int64, noLines bool) (*fileIndex, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("search: index %s: %w", path, err)
	}
	x := &fileIndex{path: path, f: f, synced: -1}
	s := &scan{f: f, size: fi.Size(), q: &Query{}, st: &Stats{}}
	dev, ino := fileID(fi)
	if ix := s.loadIndex(path, dev, ino, true); ix != nil {
		x.b = ix.extend()
		x.g = NewGrouper(ix.tail)
		x.off = ix.covered
	} else {
		x.b = NewBuilder(blockSize)
		x.b.ix.dev, x.b.ix.ino = dev, ino
		x.g = NewGrouper(nil)
	}
	x.g.noLines = noLines
	return x, nil
}

// catchUp indexes the file's lines from x.off to end (a line boundary).
func (x *fileIndex) catchUp(end int64) error {
	if end <= x.off {
		return nil
	}
	lr := newLineReader(io.NewSectionReader(x.f, x.off, end-x.off), x.off)
	for {
		off, line, long, ok, _, err := lr.next()
		if err != nil {
			return fmt.Errorf("search: index %s: %w", x.path, err)
		}
		if !ok {
			return nil
		}
		x.line(off, line, long, nil, 0)
	}
}

// line indexes one whole line (with its '\n') at off, which must be x.off.
// seg, when not nil, holds the index terms of the line (given by the
// writer, who parsed it); else the line is parsed here if it can hold a
// term beyond its type. line may be a view of a buffer the caller reuses:
// with a Grouper that keeps no lines, nothing of it is kept.
func (x *fileIndex) line(off int64, line string, long bool, seg []uint64, segID uint64) {
	x.off = off + int64(len(line))
	x.b.line(off, x.g)
	if long {
		x.g.Skip()
	} else if ev := x.g.add(off, line); ev != nil && !ev.phantom && x.g.noLines {
		ev.noted = true
		switch {
		case seg != nil:
			if ev.lastSeg != segID {
				ev.th = append(ev.th, seg...)
				ev.lastSeg = segID
			}
		default:
			if t := ev.types[len(ev.types)-1]; t >= records.ContainerOp && t <= records.ContidLoss || strings.Contains(line, "key=") {
				if r, err := records.ParseLine(strings.Clone(line)); err == nil {
					ev.th = recordTerms(ev.th, &r)
				}
			}
		}
	}
	for ev, ok := x.g.Next(); ok; ev, ok = x.g.Next() {
		x.b.event(ev)
		x.g.recycle(ev)
	}
}

// snapshot returns the index of what is final so far, hashed.
func (x *fileIndex) snapshot() (*Index, error) {
	ix := x.b.snapshot(x.off, x.g)
	var err error
	if ix.headHash, ix.tailHash, err = hashes(x.f, ix.covered); err != nil {
		return nil, fmt.Errorf("search: index %s: %w", x.path, err)
	}
	return ix, nil
}

// sync writes the sidecar for what is final so far.
func (x *fileIndex) sync(prune bool) error {
	ix, err := x.snapshot()
	if err != nil {
		return err
	}
	if err := writeSidecar(x.path, ix, prune); err != nil {
		return fmt.Errorf("search: index %s: %w", x.path, err)
	}
	x.synced = x.off
	return nil
}

// finish writes the sidecar of a file that is complete (rotated, or the
// writer stops): it also summarises the events its end closes, valid while
// the file keeps its size. A file that holds more than was indexed (another
// writer, a torn last line) gets the ordinary sidecar.
func (x *fileIndex) finish() error {
	fi, err := x.f.Stat()
	if err != nil {
		return fmt.Errorf("search: index %s: %w", x.path, err)
	}
	if fi.Size() != x.off {
		return x.sync(false)
	}
	x.b.end(x.off, x.g)
	x.g.Flush()
	for ev, ok := x.g.Next(); ok; ev, ok = x.g.Next() {
		x.b.event(ev)
	}
	x.b.flushed(fi.Size())
	ix := x.b.ix
	if ix.headHash, ix.tailHash, err = hashes(x.f, ix.covered); err != nil {
		return fmt.Errorf("search: index %s: %w", x.path, err)
	}
	if err := writeSidecar(x.path, ix, false); err != nil {
		return fmt.Errorf("search: index %s: %w", x.path, err)
	}
	return nil
}

// recordTerms appends to th the hashes of the index terms a record brings
// to whatever event it is grouped in: the elements of the chains it
// carries by itself, its keys. Summed over an event's records they hold
// every term of the event (eventTerms), whichever way the lines group.
func recordTerms(th []uint64, r *records.Record) []uint64 {
	if r.Type >= records.ContainerOp && r.Type <= records.ContidLoss {
		for _, c := range chainsOf(unsafe.Slice(r, 1)) {
			for _, id := range c {
				th = append(th, contidHash(uint64(id)))
			}
		}
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Key != "key" || f.Enriched {
			continue
		}
		for k := range strings.SplitSeq(f.Value, "\x01") {
			th = append(th, fnvAdd(fnvAdd(fnvOffset, "k"), k))
		}
	}
	return th
}

// LogIndex keeps the sidecar of a log while a daemon writes it, without
// reading the log back: it is an auditlog.Observer of the log's Writer,
// which tells it of every run of whole lines that reached the file, at
// its offset, and of a file it stops writing (rotation, reopen, close).
// Only those lines are indexed, so the sidecar never covers a byte the
// file does not hold, whatever the disk did (a full disk's queued lines
// are indexed when they are written).
//
// The writer of the lines can spare it their parsing: Note gives the
// records of the lines just formatted, Block the buffer that holds them,
// just before it goes to the log. When the Writer reports that very buffer
// (same memory, same length) as written, the noted terms are used;
// anything else (a line another goroutine wrote, a buffer split or queued
// on a full disk) is parsed. Lines are grouped into events by the same
// rules as a search (each line's header is read), so the sidecar is the one
// a search would build, with Bloom filters that may hold more terms (never
// fewer).
//
// Sync writes the sidecar (the daemon calls Tick, which writes it every
// SidecarEvery or SidecarBytes); a file that is finished gets a final
// sidecar at once. A crash loses at most what was indexed since the last
// sidecar: a search scans that part, as it scans any part of a log the
// sidecar does not cover. A log found without a sound sidecar when the
// LogIndex first sees it is indexed from its start if it is at most
// MaxCatchUp bytes, and left to the first search otherwise.
//
// A LogIndex is safe for concurrent use: the Writer calls it under its own
// lock, the caller of Note, Block and Sync from its goroutine.
type LogIndex struct {
	mu        sync.Mutex
	log       *slog.Logger
	blockSize int64
	cur       *fileIndex
	skip      *os.File // a file not indexed (see MaxCatchUp)
	prune     string   // a log beside which sidecars are to be pruned

	// Noted since the last Block, and for the block in flight: segments
	// (an event's lines and terms) over one arena of hashes.
	notes, want []noteSeg
	noteTh      []uint64
	wantTh      []uint64
	wantBuf     []byte
	nextSeg     uint64
	lastErr     string
	stats       LogIndexStats
	lastSync    time.Time // of the current file's sidecar (Tick)
}

// What Tick lets go unwritten, at most, of the live log's sidecar: a
// crash leaves that part of the log to be scanned by searches (and
// indexed at the daemon's restart). Each write rewrites the whole sidecar
// (a temporary file and a rename), so not at every tick.
const (
	SidecarEvery = 10 * time.Second
	SidecarBytes = 4 << 20
)

// LogIndexStats counts what a LogIndex did.
type LogIndexStats struct {
	Lines        uint64 // lines indexed
	NotedLines   uint64 // … with terms given by Note
	Syncs        uint64 // sidecars written
	Errors       uint64 // sidecars that could not be written, files that could not be read
	FilesSkipped uint64 // files left to the first search
}

type noteSeg struct {
	n        int // lines
	from, to int // in the arena
	id       uint64
}

// MaxCatchUp is the most bytes of a log without a sound sidecar that a
// LogIndex reads when it first sees the log (a crash before its first
// Sync, a log written before the index was kept).
const MaxCatchUp = 64 << 20

// NewLogIndex returns a LogIndex; blockSize 0 is DefaultBlockSize; log may
// be nil.
func NewLogIndex(blockSize int64, log *slog.Logger) *LogIndex {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LogIndex{blockSize: blockSize, log: log}
}

// Note tells the index the records of the lines just appended to the
// buffer that Block will give: one line per record, in order.
func (x *LogIndex) Note(recs []records.Record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	from := len(x.noteTh)
	for i := range recs {
		x.noteTh = recordTerms(x.noteTh, &recs[i])
	}
	x.nextSeg++
	x.notes = append(x.notes, noteSeg{n: len(recs), from: from, to: len(x.noteTh), id: x.nextSeg})
}

// Block says that buf, which holds the lines noted since the last Block,
// is about to be written to the log.
func (x *LogIndex) Block(buf []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.want, x.notes = x.notes, x.want[:0]
	x.wantTh, x.noteTh = x.noteTh, x.wantTh[:0]
	x.wantBuf = buf
	n := 0
	for _, s := range x.want {
		n += s.n
	}
	if n != bytes.Count(buf, []byte{'\n'}) {
		x.wantBuf = nil // not what was noted: parse it
	}
}

// Appended is told by the log's Writer that data, whole lines, reached the
// file f (opened at f.Name()) at offset off.
func (x *LogIndex) Appended(f *os.File, off int64, data []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(data) == 0 || f == x.skip {
		return
	}
	fi := x.file(f, off)
	if fi == nil {
		return
	}
	var segs []noteSeg
	if len(data) == len(x.wantBuf) && unsafe.SliceData(data) == unsafe.SliceData(x.wantBuf) {
		segs = x.want
		x.wantBuf = nil
	}
	si, left := 0, 0
	if len(segs) > 0 {
		left = segs[0].n
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // not whole lines: the next run starts a catch-up
		}
		line := unsafe.String(unsafe.SliceData(data), i+1)
		data = data[i+1:]
		var th []uint64
		var id uint64
		for segs != nil && left == 0 {
			if si++; si == len(segs) {
				segs = nil // cannot happen (Block counted the lines): parse the rest
				break
			}
			left = segs[si].n
		}
		if segs != nil {
			s := &segs[si]
			th, id = x.wantTh[s.from:s.to:s.to], s.id
			if th == nil {
				th = []uint64{}
			}
			left--
			x.stats.NotedLines++
		}
		x.stats.Lines++
		fi.line(off, line, len(line) > maxLine, th, id)
		off += int64(len(line))
	}
}

// file returns the index of f, ready for a line at off: opened when f is
// new, caught up when lines were written that it was not told of (the end
// of a torn line that a reopen completed, another writer's). nil when f is
// not indexed.
func (x *LogIndex) file(f *os.File, off int64) *fileIndex {
	if x.cur != nil && x.cur.f != f {
		x.retire()
	}
	if x.cur == nil {
		fi, err := openFileIndex(f.Name(), f, x.blockSize, true)
		if err != nil {
			x.fail(err)
			x.skip = f
			return nil
		}
		if off-fi.off > MaxCatchUp {
			x.log.Info("search index: log without a sound sidecar left to the first search", "log", f.Name(), "bytes", off-fi.off)
			x.stats.FilesSkipped++
			x.skip = f
			return nil
		}
		x.cur = fi
	}
	switch {
	case off > x.cur.off:
		if err := x.cur.catchUp(off); err != nil {
			x.fail(err)
			x.skip, x.cur = f, nil
			return nil
		}
	case off < x.cur.off:
		// The file lost lines we indexed: leave it to searches.
		x.fail(fmt.Errorf("search: index %s: written at %d, indexed to %d", f.Name(), off, x.cur.off))
		x.skip, x.cur = f, nil
		return nil
	}
	return x.cur
}

// Retiring is told by the log's Writer that it is about to close f: the
// file is complete as far as this writer goes, and its final sidecar is
// written.
func (x *LogIndex) Retiring(f *os.File) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.skip == f {
		x.skip = nil
	}
	if x.cur != nil && x.cur.f == f {
		x.retire()
	}
}

func (x *LogIndex) retire() {
	if err := x.cur.finish(); err != nil {
		x.fail(err)
	} else {
		x.stats.Syncs++
	}
	// A rotation just renamed the logs: the sidecars of those it removed
	// are pruned once the directory is quiet (Sync tries).
	x.prune = x.cur.path
	x.cur = nil
	x.lastSync = time.Time{} // the next file's first sidecar at the next tick
}

// Sync writes the sidecar of the file being written, if it grew since the
// last, and prunes the sidecars of removed logs after a rotation.
func (x *LogIndex) Sync() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sync(true, time.Now())
}

// Tick is Sync at the daemon's tick: it prunes when a rotation left that
// to do, and writes the sidecar once the file grew SidecarBytes or
// SidecarEvery passed since the last was written.
func (x *LogIndex) Tick(now time.Time) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	due := x.cur != nil && (x.cur.off-x.cur.synced >= SidecarBytes || now.Sub(x.lastSync) >= SidecarEvery)
	return x.sync(due, now)
}

// sync prunes if a rotation left that to do and, with write, writes the
// sidecar of the file being written if it grew since the last. Under mu.
func (x *LogIndex) sync(write bool, now time.Time) error {
	if x.prune != "" && pruneSidecars(x.prune) {
		x.prune = ""
	}
	if !write || x.cur == nil || x.cur.synced == x.cur.off {
		return nil
	}
	if err := x.cur.sync(false); err != nil {
		x.fail(err)
		return err
	}
	x.stats.Syncs++
	x.lastSync = now
	return nil
}

// Stats returns the counters.
func (x *LogIndex) Stats() LogIndexStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

// fail counts an error and logs it when it differs from the last (a full
// disk fails every Sync the same way).
func (x *LogIndex) fail(err error) {
	x.stats.Errors++
	if s := err.Error(); s != x.lastErr {
		x.lastErr = s
		x.log.Warn("search index: the log stays searchable by scanning", "err", err)
	}
}

// IndexWriter keeps a log file's sidecar up to date from the bytes written
// to the log, for a writer that hands over bytes rather than lines (tests,
// tools); the daemon uses LogIndex. Call Write with every byte appended to
// the file, in order, and Sync when the file is synced or rotated; after a
// rotation, open a new IndexWriter for the new file (the renamed file keeps
// its sidecar, which is named by inode). It is not safe for concurrent use.
type IndexWriter struct {
	x       *fileIndex
	partial []byte // a line not yet complete
}

// NewIndexWriter starts the index of the log at path from what the file
// holds now: its sidecar when sound, extended over the bytes after it.
func NewIndexWriter(path string, blockSize int64) (*IndexWriter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("search: index %s: %w", path, err)
	}
	x, err := openFileIndex(path, f, blockSize, false)
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			w := &IndexWriter{x: x}
			// Catch up with what the file holds beyond the index.
			if _, err = io.Copy(w, io.NewSectionReader(f, x.off, fi.Size()-x.off)); err == nil {
				return w, nil
			}
		}
	}
	f.Close()
	return nil, fmt.Errorf("search: index %s: %w", path, err)
}

// Write takes bytes appended to the log. It never fails.
func (w *IndexWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		var line string
		if len(w.partial) > 0 {
			line = string(append(w.partial, p[:i+1]...))
			w.partial = w.partial[:0]
		} else {
			line = string(p[:i+1])
		}
		p = p[i+1:]
		w.x.line(w.x.off, line, len(line) > maxLine, nil, 0)
	}
	return n, nil
}

// Sync writes the sidecar for what is final so far.
func (w *IndexWriter) Sync() error { return w.x.sync(true) }

// Close syncs and releases the file.
func (w *IndexWriter) Close() error {
	err := w.Sync()
	w.x.f.Close()
	return err
}

const maxLine = records.MaxLineLen + 2
