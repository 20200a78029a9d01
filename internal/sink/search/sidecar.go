package search

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// indexed searches one file through its sidecar: the blocks the index
// admits, then the part after what it covers, which is scanned and (when
// allowed) indexed so that the next search finds it covered.
// ix is the file's sidecar, loaded ahead (nil: none sound).
func (s *scan) indexed(path string, fi os.FileInfo, ix *Index, opt Options) error {
	dev, ino := fileID(fi)
	if ix != nil && ix.outside {
		// The whole file is summarised and outside the query's time.
		s.st.Indexed++
		s.st.Malformed += ix.skipped
		if ix.final != nil && ix.finalEnd < s.size {
			s.st.Torn++ // as the scan would have counted it
		}
		return nil
	}
	useFinal := ix != nil && ix.final != nil && ix.finalSize == s.size
	extend := ix != nil && ix.covered != s.size && !useFinal && !opt.ReadOnly
	var runs []tailRun
	if ix != nil {
		// Everything the search will use is checked before anything is
		// emitted: a block that fails its checksum makes it a scan.
		if (!useFinal || ix.blockOK(ix.n)) && (!extend || ix.allOK()) {
			runs = ix.runs(s.q)
		}
		if runs == nil {
			ix = nil
		}
	}
	var b *Builder
	switch {
	case ix == nil:
		b = NewBuilder(opt.BlockSize)
		b.ix.dev, b.ix.ino = dev, ino
		if err := s.run(0, s.size, nil, b); err != nil {
			return err
		}
	default:
		s.st.Indexed++
		s.st.Malformed += ix.skipped
		for _, r := range runs {
			r.willNeed(s.f)
		}
		for _, r := range runs {
			if err := s.runTails(r.start, r.end, r.open, r.tails); err != nil {
				return err
			}
		}
		switch {
		case ix.covered == s.size:
			return nil
		case useFinal:
			if !ix.final.mayMatch(s.q) {
				if ix.finalEnd < s.size {
					s.st.Torn++ // as the scan would have counted it
				}
				return nil
			}
			return s.run(ix.covered, s.size, ix.tail, nil)
		case !extend:
			return s.run(ix.covered, s.size, ix.tail, nil)
		}
		b = ix.extend()
		if err := s.run(ix.covered, s.size, ix.tail, b); err != nil {
			return err
		}
	}
	if opt.ReadOnly || b.ix.covered == 0 && b.ix.final == nil {
		return nil
	}
	var err error
	if b.ix.headHash, b.ix.tailHash, err = hashes(s.f, b.ix.covered); err != nil {
		return nil // the index is an optimisation: a read error here only costs speed
	}
	if writeSidecar(path, b.ix, true) == nil {
		s.st.Rebuilt++
	}
	return nil
}

// tailRun is a run of blocks to read: from the checkpoint at start to end,
// then the tail lines.
type tailRun struct {
	start, end int64
	open       []Phantom
	tails      []tailLine
}

// willNeed asks the kernel to read the run's bytes ahead: on a cold page
// cache the reads of all runs overlap.
func (r *tailRun) willNeed(f *os.File) {
	end := r.end
	for _, t := range r.tails {
		if e := t.off + int64(t.n); e-r.start <= 4<<20 {
			end = max(end, e)
		} else {
			unix.Fadvise(int(f.Fd()), t.off, int64(t.n), unix.FADV_WILLNEED)
		}
	}
	unix.Fadvise(int(f.Fd()), r.start, end-r.start, unix.FADV_WILLNEED)
}

// runs returns the runs of consecutive blocks that may hold a match of q
// (an empty, non-nil slice when none may), or nil when a block the search
// needs fails its checksum.
func (ix *Index) runs(q *Query) []tailRun {
	runs := []tailRun{}
	n := ix.nblocks()
	var blk block
	for i := 0; i < n; {
		if !ix.mayMatchAt(i, q) {
			i++
			continue
		}
		if !ix.blockOK(i) {
			return nil
		}
		ix.entry(i, &blk)
		r := tailRun{start: blk.off, open: blk.phantoms(), tails: blk.tailLines()}
		j := i + 1
		for ; j < n && ix.mayMatchAt(j, q); j++ {
			if !ix.blockOK(j) {
				return nil
			}
			ix.entry(j, &blk)
			r.tails = append(r.tails, blk.tailLines()...)
		}
		r.end = ix.covered
		if j < n {
			ix.entry(j, &blk)
			r.end = blk.off
		}
		keep := r.tails[:0:0]
		for _, t := range r.tails {
			if t.off >= r.end {
				keep = append(keep, t)
			}
		}
		r.tails = keep
		runs = append(runs, r)
		i = j
	}
	return runs
}

// loadIndex returns the file's index when it is sound and describes this
// file: checksums, identity, size and the hashes of the covered bytes. A
// sidecar that could have been written by someone other than root or the
// caller is not trusted: it could hide events from a search.
//
// Only the header is read first. When it shows that the whole file is
// summarised and its events lie outside the query's time, the index is
// returned with outside set and nothing else read. Else the sidecar is
// mapped (a search looks at a small part of the filters) and unmapped at
// the end of the search, its table checked, and each block's variable
// area checked when the search first uses it; copied reads and checks it
// all, for an index kept for longer (LogIndex).
func (s *scan) loadIndex(path string, dev, ino uint64, copied bool) *Index {
	d, err := openIndexDir(path, false)
	if err != nil {
		return nil
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), sidecarName(dev, ino), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), sidecarName(dev, ino))
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !trustedOwner(fi) || fi.Size() > 1<<30 || fi.Size() < hdrSize {
		return nil
	}
	var hb [hdrSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return nil
	}
	h, err := decodeHeader(hb[:])
	if err != nil || h.size() != fi.Size() || h.ix.dev != dev || h.ix.ino != ino || h.ix.covered > s.size {
		return nil
	}
	if hd, tl, err := hashes(s.f, h.ix.covered); err != nil || hd != h.ix.headHash || tl != h.ix.tailHash {
		return nil
	}
	whole := h.ix.covered == s.size || h.ix.finalSize == s.size && h.ix.finalSize > 0
	if !copied && whole && (s.q.HasStart && h.ix.maxSec < s.q.Start || s.q.HasEnd && h.ix.minSec > s.q.End || h.ix.minSec > h.ix.maxSec) {
		h.ix.outside = true
		if h.ix.finalSize > 0 {
			h.ix.final = &block{} // for the torn-line count
		}
		return h.ix
	}
	// Sidecars are only ever replaced by rename, never rewritten: a
	// mapping holds still.
	var data []byte
	if copied {
		data = make([]byte, fi.Size())
		if _, err := io.ReadFull(f, data); err != nil {
			return nil
		}
		ix, err := UnmarshalIndex(data)
		if err != nil || ix.dev != dev || ix.ino != ino || ix.covered != h.ix.covered || ix.headHash != h.ix.headHash || ix.tailHash != h.ix.tailHash {
			return nil
		}
		return ix
	}
	// One read ahead of the whole sidecar rather than a fault per page
	// of the table and filters on a cold cache.
	unix.Fadvise(int(f.Fd()), hdrSize, 0, unix.FADV_WILLNEED)
	if data, err = unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil
	}
	s.maps = append(s.maps, data)
	ix, err := unmarshalIndex(data)
	if err != nil || ix.dev != dev || ix.ino != ino || ix.covered != h.ix.covered || ix.headHash != h.ix.headHash || ix.tailHash != h.ix.tailHash {
		return nil
	}
	return ix
}

// openIndexDir opens the index directory beside the log at logPath,
// creating it when asked, without following a symbolic link in its place,
// and only when it is trusted. The sidecars are then opened relative to
// it, so that the directory cannot be swapped after the check.
func openIndexDir(logPath string, create bool) (*os.File, error) {
	parent, err := os.Open(filepath.Dir(logPath))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return openIndexDirAt(parent, create)
}

// openIndexDirAt is openIndexDir in the log directory parent, already open.
func openIndexDirAt(parent *os.File, create bool) (*os.File, error) {
	if create {
		if err := unix.Mkdirat(int(parent.Fd()), IndexDirName, 0o700); err != nil && err != unix.EEXIST {
			return nil, fmt.Errorf("search: mkdir %s: %w", IndexDirName, err)
		}
	}
	fd, err := unix.Openat(int(parent.Fd()), IndexDirName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("search: open %s: %w", IndexDirName, err)
	}
	d := os.NewFile(uintptr(fd), filepath.Join(parent.Name(), IndexDirName))
	fi, err := d.Stat()
	if err != nil || !trustedOwner(fi) {
		d.Close()
		return nil, fmt.Errorf("search: %s: not a directory owned by root or us and closed to others", d.Name())
	}
	return d, nil
}

func sidecarName(dev, ino uint64) string { return fmt.Sprintf("%d-%d.idx", dev, ino) }

// trustedOwner: owned by root or by us, and writable by nobody else.
func trustedOwner(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	uid := uint32(os.Geteuid())
	return (st.Uid == 0 || st.Uid == uid) && fi.Mode().Perm()&0o022 == 0
}

// writeSidecar writes ix atomically (a temporary file renamed over the
// old one) in the index directory beside the log, creating it when
// missing, and, with prune, tries to remove the sidecars of files that
// are gone (see pruneSidecars).
func writeSidecar(logPath string, ix *Index, prune bool) error {
	d, err := openIndexDir(logPath, true)
	if err != nil {
		return err
	}
	dfd := int(d.Fd())
	tmp := fmt.Sprintf(".tmp-%d-%d", os.Getpid(), time.Now().UnixNano())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		d.Close()
		return fmt.Errorf("search: create sidecar: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(ix.Marshal())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, sidecarName(ix.dev, ix.ino))
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
	}
	d.Close()
	if err != nil {
		return fmt.Errorf("search: write sidecar: %w", err)
	}
	if prune {
		pruneSidecars(logPath)
	}
	return nil
}

// quietFor is how long the log directory must have been left unchanged
// before a listing of it is trusted to hold every log: more than the
// coarse clock step the kernel stamps a directory's ctime with.
var quietFor = 100 * time.Millisecond

// pruneSidecars removes the sidecars of the logs no longer beside logPath
// and says whether it could look. A log is renamed under it (logrotate,
// the writer's own rotation), and a listing taken while a log is renamed
// can miss it, which would take the sidecar of a live log. So it trusts
// only a listing of a directory that was not changed while it was listed
// and had not been for quietFor before: every rename, link and unlink in
// a directory moves its ctime. When the directory is busy it removes
// nothing: the garbage waits for the next try.
func pruneSidecars(logPath string) bool {
	logDir := filepath.Dir(logPath)
	ld, err := os.Open(logDir)
	if err != nil {
		return false
	}
	defer ld.Close()
	changed := func() (unix.Timespec, bool) {
		var st unix.Stat_t
		if unix.Fstat(int(ld.Fd()), &st) != nil {
			return unix.Timespec{}, false
		}
		return st.Ctim, true
	}
	before, ok := changed()
	if !ok || time.Since(time.Unix(before.Unix())) < quietFor {
		return false
	}
	live := map[string]bool{}
	ents, err := ld.ReadDir(-1)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return false // renamed or removed while listed
		}
		live[sidecarName(fileID(fi))] = true
	}
	if after, ok := changed(); !ok || after != before {
		return false
	}
	// The index directory of the directory just listed, not of whatever
	// the path names now.
	d, err := openIndexDirAt(ld, false)
	if err != nil {
		return false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return false
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".idx") && !live[n] {
			unix.Unlinkat(int(d.Fd()), n, 0)
		}
	}
	return true
}

// Rebuild discards and rebuilds the sidecars of files, and returns how
// many it wrote.
func Rebuild(files []string, blockSize int64) (int, error) {
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			return 0, fmt.Errorf("search: %w", err)
		}
		dev, ino := fileID(fi)
		if err := os.Remove(sidecarPath(path, dev, ino)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("search: %w", err)
		}
	}
	st, err := Search(files, &Query{}, Options{BlockSize: blockSize}, func(*Event) error { return nil })
	return st.Rebuilt, err
}
