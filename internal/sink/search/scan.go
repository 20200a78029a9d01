package search

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stats says what a search read and skipped.
type Stats struct {
	Files     int
	Events    uint64 // events read (matched or not)
	Matched   uint64
	Bytes     int64  // size of the files searched
	BytesRead int64  // bytes read from them
	Torn      uint64 // files ending in a line without its newline
	Malformed uint64 // lines that did not parse or were too long
	Indexed   int    // files whose index was used
	Rebuilt   int    // sidecars written or extended
}

// Options tunes a search.
type Options struct {
	// NoIndex scans every byte and neither reads nor writes sidecars.
	NoIndex bool
	// ReadOnly uses sidecars but never writes one.
	ReadOnly bool
	// BlockSize is the index block size for sidecars written (0: default).
	BlockSize int64
}

// Search runs q over files in order and calls emit with every matching
// event in log order. An error from emit ends the search.
//
// The next few files are opened, and their sidecars' headers and tables
// read and checked, ahead of the one searched: on a cold page cache their
// reads overlap instead of waiting for each other.
func Search(files []string, q *Query, opt Options, emit func(*Event) error) (Stats, error) {
	var st Stats
	const ahead = 8
	pre := make([]*opened, len(files))
	// loadIndex reads only the query's time; the goroutines get a copy.
	tq := &Query{Start: q.Start, End: q.End, HasStart: q.HasStart, HasEnd: q.HasEnd}
	next := 0
	for i := range files {
		for ; next < len(files) && next <= i+ahead; next++ {
			o := &opened{path: files[next], done: make(chan struct{})}
			pre[next] = o
			go func() {
				defer close(o.done)
				o.open(tq, !opt.NoIndex)
			}()
		}
		o := pre[i]
		pre[i] = nil
		<-o.done
		if err := searchFile(o, q, opt, &st, emit); err != nil {
			for _, o := range pre[i+1 : next] {
				<-o.done
				o.close()
			}
			return st, err
		}
	}
	return st, nil
}

// opened is a file opened, with its sidecar loaded, for its search.
type opened struct {
	path string
	f    *os.File
	fi   os.FileInfo
	ix   *Index
	maps [][]byte
	err  error
	done chan struct{}
}

func (o *opened) open(tq *Query, index bool) {
	if o.f, o.err = os.Open(o.path); o.err != nil {
		return
	}
	if o.fi, o.err = o.f.Stat(); o.err != nil || !index {
		return
	}
	s := &scan{f: o.f, size: o.fi.Size(), q: tq, st: &Stats{}}
	dev, ino := fileID(o.fi)
	o.ix = s.loadIndex(o.path, dev, ino, false)
	o.maps = s.maps
}

func (o *opened) close() {
	if o.f != nil {
		o.f.Close()
	}
	for _, m := range o.maps {
		unix.Munmap(m)
	}
}

func searchFile(o *opened, q *Query, opt Options, st *Stats, emit func(*Event) error) error {
	defer o.close()
	if o.err != nil {
		return fmt.Errorf("search: %w", o.err)
	}
	st.Files++
	size := o.fi.Size()
	st.Bytes += size
	s := &scan{f: o.f, size: size, q: q, st: st, emit: emit}
	if !opt.NoIndex {
		return s.indexed(o.path, o.fi, o.ix, opt)
	}
	s.countSkips = true
	return s.run(0, size, nil, nil)
}

// scan reads ranges of one file.
type scan struct {
	f    *os.File
	size int64
	q    *Query
	st   *Stats
	emit func(*Event) error
	br   *bufio.Reader
	maps [][]byte // sidecars mapped by loadIndex, for the caller to unmap
	// countSkips counts the malformed lines of ranges read without a
	// Builder; an index brings the count of what it covers instead.
	countSkips bool
}

// run groups the lines from offset from (a checkpoint with the events open
// there) and emits the matching events whose first line lies before to.
// It reads past to until those events have ended. b, when not nil, sees
// every line and event (an index being built over the range).
func (s *scan) run(from, to int64, open []Phantom, b *Builder) error {
	g := NewGrouper(open)
	lr := s.reader(from)
	drain := func() error { return s.drain(g, to, b) }
	defer func() {
		s.st.BytesRead += lr.off - from
		if s.countSkips || b != nil {
			s.st.Malformed += g.Stats().Malformed
		}
	}()
	for {
		off, line, long, ok, torn, err := lr.next()
		if err != nil {
			return fmt.Errorf("search: read %s: %w", s.f.Name(), err)
		}
		if !ok {
			if torn > 0 {
				s.st.Torn++
			}
			if b != nil {
				b.end(off, g)
			}
			break
		}
		if b == nil && off >= to {
			if o := g.OldestOpen(); o < 0 || o >= to {
				return nil
			}
		}
		if b != nil {
			b.line(off, g)
		}
		if long {
			g.Skip()
		} else {
			g.Add(off, line)
		}
		if err := drain(); err != nil {
			return err
		}
	}
	g.Flush()
	if err := drain(); err != nil {
		return err
	}
	if b != nil {
		b.flushed(s.size)
	}
	return nil
}

// drain takes the events g has ended, hands each to b when not nil, and
// emits those that match and begin before to.
func (s *scan) drain(g *Grouper, to int64, b *Builder) error {
	for ev, ok := g.Next(); ok; ev, ok = g.Next() {
		if b != nil {
			b.event(ev)
		}
		if ev.First >= to {
			continue
		}
		s.st.Events++
		if s.q.Match(ev) {
			s.st.Matched++
			if err := s.emit(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// reader returns a line reader from offset from, reusing one buffer for
// the ranges of a file.
func (s *scan) reader(from int64) *lineReader {
	sr := io.NewSectionReader(s.f, from, s.size-from)
	if s.br == nil {
		s.br = bufio.NewReaderSize(sr, 64<<10)
	} else {
		s.br.Reset(sr)
	}
	return &lineReader{br: s.br, off: from}
}

// runTails emits the matching events whose first line lies in [from, to):
// it reads that range from the checkpoint at from, then only the lines
// after it that the index lists as belonging to those events (tails),
// and then ends every event. The grouping is the same as a scan's: every
// rule that would end one of these events before one of its tail lines
// would also end it in the full file, where that line could then not be
// its.
func (s *scan) runTails(from, to int64, open []Phantom, tails []tailLine) error {
	sort.Slice(tails, func(i, j int) bool { return tails[i].off < tails[j].off })
	g := NewGrouper(open)
	drain := func() error { return s.drain(g, to, nil) }
	err := s.eachLine(from, to, func(off int64, line string, long bool) error {
		if long {
			g.Skip()
		} else {
			g.Add(off, line)
		}
		return drain()
	})
	if err != nil {
		return err
	}
	s.st.BytesRead += to - from
	// The tail lines, read in runs: they often lie close together.
	for i := 0; i < len(tails); {
		j, end := i+1, tails[i].off+int64(tails[i].n)
		for j < len(tails) && tails[j].off-end < 4096 && tails[j].off+int64(tails[j].n)-tails[i].off <= 1<<20 {
			end = max(end, tails[j].off+int64(tails[j].n))
			j++
		}
		buf := make([]byte, end-tails[i].off)
		if _, err := s.f.ReadAt(buf, tails[i].off); err != nil {
			return fmt.Errorf("search: read %s: %w", s.f.Name(), err)
		}
		s.st.BytesRead += int64(len(buf))
		text := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is not written again
		var prev int64 = -1
		for _, t := range tails[i:j] {
			if t.off == prev {
				continue
			}
			prev = t.off
			rel := t.off - tails[i].off
			g.Add(t.off, text[rel:rel+int64(t.n)])
			if err := drain(); err != nil {
				return err
			}
		}
		i = j
	}
	g.Flush()
	return drain()
}

// eachLine calls fn with every line of the file in [from, to), which
// starts at a line and ends at a line end, reading in large chunks that
// the lines are views of (one copy, no allocation per line). A line
// longer than maxLine is given as long, without its text.
func (s *scan) eachLine(from, to int64, fn func(off int64, line string, long bool) error) error {
	const chunk = 256 << 10
	var carry []byte // the start of a line the last chunk cut
	long := false    // in a line too long to keep
	lineOff := from
	for pos := from; pos < to; {
		n := min(int64(chunk), to-pos)
		buf := make([]byte, len(carry)+int(n))
		copy(buf, carry)
		if _, err := s.f.ReadAt(buf[len(carry):], pos); err != nil {
			return fmt.Errorf("search: read %s: %w", s.f.Name(), err)
		}
		pos += n
		text := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is not written again
		carry = nil
		for len(text) > 0 {
			i := strings.IndexByte(text, '\n')
			if i < 0 {
				if long || len(text) > maxLine {
					long = true // the rest is not kept
				} else {
					carry = []byte(text)
				}
				break
			}
			line := text[:i+1]
			text = text[i+1:]
			off := lineOff
			lineOff = pos - int64(len(text))
			var err error
			if long || len(line) > maxLine {
				long = false
				err = fn(off, "", true)
			} else {
				err = fn(off, line, false)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
