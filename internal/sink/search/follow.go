package search

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Follower prints the matches of a query as lines are appended to a log,
// and follows the log through rotation by rename (the renamed file is read
// to its end first) and through truncation. Its grouping is a search's,
// except that the end of the data so far ends no event: an event is
// complete when the grouping rules end it, or when the log has been idle
// for a while (Idle). Not safe for concurrent use.
type Follower struct {
	path    string
	q       *Query
	emit    func(*Event) error
	f       *os.File
	dev     uint64
	ino     uint64
	off     int64
	g       *Grouper
	partial []byte
	buf     []byte
	// Matched counts the events emitted.
	Matched uint64
}

// NewFollower opens the log at path and reads it from offset from (0:
// the whole file; the file's size: only what comes next).
func NewFollower(path string, q *Query, from int64, emit func(*Event) error) (*Follower, error) {
	fl := &Follower{path: path, q: q, emit: emit, g: NewGrouper(nil), buf: make([]byte, 256<<10)}
	if err := fl.open(); err != nil {
		return nil, err
	}
	fl.off = from
	return fl, nil
}

func (fl *Follower) open() error {
	f, err := os.Open(fl.path)
	if err != nil {
		return fmt.Errorf("search: follow: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("search: follow: %w", err)
	}
	fl.f = f
	fl.dev, fl.ino = fileID(fi)
	fl.off = 0
	return nil
}

// Poll reads what was appended since the last call and emits the events
// it completes. It reports whether it read anything.
func (fl *Follower) Poll() (bool, error) {
	got, err := fl.drain()
	if err != nil {
		return got, err
	}
	fi, err := os.Stat(fl.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return got, nil // between a rename and the new file
	case err != nil:
		return got, fmt.Errorf("search: follow: %w", err)
	}
	if dev, ino := fileID(fi); dev != fl.dev || ino != fl.ino {
		// Rotated: the old file is read to its end, its events end with it.
		if _, err := fl.drain(); err != nil {
			return got, err
		}
		if err := fl.Idle(); err != nil {
			return got, err
		}
		fl.f.Close()
		fl.partial = fl.partial[:0]
		if err := fl.open(); err != nil {
			return got, err
		}
		g2, err := fl.drain()
		return got || g2, err
	}
	if fi.Size() < fl.off { // truncated in place
		if err := fl.Idle(); err != nil {
			return got, err
		}
		fl.off, fl.partial = 0, fl.partial[:0]
	}
	return got, nil
}

// drain reads the file from off to its current end.
func (fl *Follower) drain() (bool, error) {
	got := false
	for {
		n, err := fl.f.ReadAt(fl.buf, fl.off)
		if n > 0 {
			got = true
			if err := fl.feed(fl.buf[:n]); err != nil {
				return got, err
			}
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("search: follow: %w", err)
		}
	}
}

func (fl *Follower) feed(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			fl.partial = append(fl.partial, p...)
			fl.off += int64(len(p))
			return nil
		}
		line := string(append(fl.partial, p[:i+1]...))
		fl.partial = fl.partial[:0]
		start := fl.off - int64(len(line)-(i+1))
		fl.off += int64(i + 1)
		p = p[i+1:]
		if len(line) > maxLine {
			fl.g.Skip()
		} else {
			fl.g.Add(start, line)
		}
		if err := fl.next(); err != nil {
			return err
		}
	}
	return nil
}

func (fl *Follower) next() error {
	for ev, ok := fl.g.Next(); ok; ev, ok = fl.g.Next() {
		if fl.q.Match(ev) {
			fl.Matched++
			if err := fl.emit(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// Idle ends the events still open: the log has been quiet long enough
// that more of their lines are not expected.
func (fl *Follower) Idle() error {
	fl.g.Flush()
	err := fl.next()
	fl.g = NewGrouper(nil)
	return err
}

// Close releases the file.
func (fl *Follower) Close() error { return fl.f.Close() }

// Follow polls the follower every interval until ctx ends, calling Idle
// after idle without new data and flush after each poll that emitted.
func Follow(ctx context.Context, fl *Follower, interval, idle time.Duration, flush func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	quiet := time.Duration(0)
	flushed := true
	for {
		before := fl.Matched
		got, err := fl.Poll()
		if err != nil {
			return err
		}
		if got {
			quiet, flushed = 0, false
		} else if quiet += interval; quiet >= idle && !flushed {
			if err := fl.Idle(); err != nil {
				return err
			}
			flushed = true
		}
		if fl.Matched != before {
			if err := flush(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
