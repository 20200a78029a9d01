package search

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// indexed searches one file through its sidecar: the blocks the index
// admits, then the part after what it covers, which is scanned and (when
// allowed) indexed so that the next search finds it covered.
func (s *scan) indexed(path string, fi os.FileInfo, opt Options) error {
	dev, ino := fileID(fi)
	ix := s.loadIndex(path, dev, ino)
	var b *Builder
	if ix == nil {
		b = NewBuilder(opt.BlockSize)
		b.ix.dev, b.ix.ino = dev, ino
		if err := s.run(0, s.size, nil, b); err != nil {
			return err
		}
	} else {
		s.st.Indexed++
		s.st.Malformed += ix.skipped
		n := ix.nblocks()
		var blk block
		for i := 0; i < n; {
			if !ix.mayMatchAt(i, s.q) {
				i++
				continue
			}
			ix.entry(i, &blk)
			start, open := blk.off, blk.phantoms()
			tails := blk.tailLines()
			j := i + 1
			for ; j < n && ix.mayMatchAt(j, s.q); j++ {
				ix.entry(j, &blk)
				tails = append(tails, blk.tailLines()...)
			}
			end := ix.covered
			if j < n {
				ix.entry(j, &blk)
				end = blk.off
			}
			keep := tails[:0]
			for _, t := range tails {
				if t.off >= end {
					keep = append(keep, t)
				}
			}
			if err := s.runTails(start, end, open, keep); err != nil {
				return err
			}
			i = j
		}
		if ix.covered == s.size {
			return nil
		}
		if ix.final != nil && ix.finalSize == s.size {
			if !ix.final.mayMatch(s.q) {
				if ix.finalEnd < s.size {
					s.st.Torn++ // as the scan would have counted it
				}
				return nil
			}
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
	if writeSidecar(path, b.ix) == nil {
		s.st.Rebuilt++
	}
	return nil
}

// loadIndex returns the file's index when it is sound and describes this
// file: checksum, identity, size and the hashes of the covered bytes. A
// sidecar that could have been written by someone other than root or the
// caller is not trusted: it could hide events from a search.
func (s *scan) loadIndex(path string, dev, ino uint64) *Index {
	dir := filepath.Join(filepath.Dir(path), IndexDirName)
	if !trustedDir(dir) {
		return nil
	}
	sp := sidecarPath(path, dev, ino)
	f, err := os.OpenFile(sp, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !trustedOwner(fi) || fi.Size() > 1<<30 {
		return nil
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil
	}
	ix, err := UnmarshalIndex(data)
	if err != nil || ix.dev != dev || ix.ino != ino || ix.covered > s.size {
		return nil
	}
	h, t, err := hashes(s.f, ix.covered)
	if err != nil || h != ix.headHash || t != ix.tailHash {
		return nil
	}
	return ix
}

// trustedOwner: owned by root or by us, and writable by nobody else.
func trustedOwner(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	uid := uint32(os.Geteuid())
	return (st.Uid == 0 || st.Uid == uid) && fi.Mode().Perm()&0o022 == 0
}

func trustedDir(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir() && trustedOwner(fi)
}

// writeSidecar writes ix atomically (a temporary file renamed over the
// old one) in the index directory beside the log, creating it when
// missing, and removes the sidecars of files that are gone.
func writeSidecar(logPath string, ix *Index) error {
	dir := filepath.Join(filepath.Dir(logPath), IndexDirName)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if !trustedDir(dir) {
		return fmt.Errorf("search: %s: not a directory owned by root or us and closed to others", dir)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(ix.Marshal())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), sidecarPath(logPath, ix.dev, ix.ino))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	pruneSidecars(filepath.Dir(logPath), dir)
	return nil
}

// pruneSidecars removes the sidecars of logs no longer in logDir.
func pruneSidecars(logDir, dir string) {
	live := map[string]bool{}
	ents, err := os.ReadDir(logDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			d, i := fileID(fi)
			live[strconv.FormatUint(d, 10)+"-"+strconv.FormatUint(i, 10)+".idx"] = true
		}
	}
	idx, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range idx {
		n := e.Name()
		if strings.HasSuffix(n, ".idx") && !live[n] {
			os.Remove(filepath.Join(dir, n))
		}
	}
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
