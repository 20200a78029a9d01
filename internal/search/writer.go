package search

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/contid/contid/internal/records"
)

// IndexWriter keeps a log file's sidecar up to date from the bytes written
// to the log, so that searches find it covered. It is meant for the
// log's writer: call Write with every byte appended to the file, in
// order, and Sync when the file is synced or rotated; after a rotation,
// open a new IndexWriter for the new file (the renamed file keeps its
// sidecar, which is named by inode). It is not safe for concurrent use.
//
// Its cost is parsing each line once more (the daemon formats its lines;
// it does not keep them parsed) plus a map insertion per container, key
// and type per event; Sync writes the sidecar, about 1% of the log.
type IndexWriter struct {
	path    string
	f       *os.File
	g       *Grouper
	b       *Builder
	off     int64  // offset of the next byte given to Write
	partial []byte // a line not yet complete
}

// NewIndexWriter starts the index of the log at path from what the file
// holds now: its sidecar when sound, extended over the bytes after it.
func NewIndexWriter(path string, blockSize int64) (*IndexWriter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("search: index %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("search: index %s: %w", path, err)
	}
	w := &IndexWriter{path: path, f: f, off: fi.Size()}
	s := &scan{f: f, size: fi.Size(), q: &Query{}, st: &Stats{}}
	dev, ino := fileID(fi)
	if ix := s.loadIndex(path, dev, ino); ix != nil {
		w.b = ix.extend()
		w.g = NewGrouper(ix.tail)
		w.off = ix.covered
	} else {
		w.b = NewBuilder(blockSize)
		w.b.ix.dev, w.b.ix.ino = dev, ino
		w.g = NewGrouper(nil)
		w.off = 0
	}
	// Catch up with what the file holds beyond the index.
	if _, err := io.Copy(w, io.NewSectionReader(f, w.off, fi.Size()-w.off)); err != nil {
		f.Close()
		return nil, fmt.Errorf("search: index %s: %w", path, err)
	}
	return w, nil
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
		off := w.off
		w.off += int64(len(line))
		w.b.line(off, w.g)
		if len(line) > 0 && len(line) <= maxLine {
			w.g.Add(off, line)
		} else {
			w.g.Skip()
		}
		for ev, ok := w.g.Next(); ok; ev, ok = w.g.Next() {
			w.b.event(ev)
		}
	}
	return n, nil
}

// Sync writes the sidecar for what is final so far.
func (w *IndexWriter) Sync() error {
	ix := w.b.snapshot(w.off, w.g)
	var err error
	if ix.headHash, ix.tailHash, err = hashes(w.f, ix.covered); err != nil {
		return fmt.Errorf("search: index %s: %w", w.path, err)
	}
	if err := writeSidecar(w.path, ix); err != nil {
		return fmt.Errorf("search: index %s: %w", w.path, err)
	}
	return nil
}

// Close syncs and releases the file.
func (w *IndexWriter) Close() error {
	err := w.Sync()
	w.f.Close()
	return err
}

const maxLine = records.MaxLineLen + 2
