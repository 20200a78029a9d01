package search

import (
	"bufio"
	"io"

	"github.com/contid/contid/internal/records"
)

// lineReader reads whole lines from a section of a file. A line longer
// than records.MaxLineLen is skipped (counted as too long) without being
// held in memory; the bytes after the last newline are the torn tail.
type lineReader struct {
	br      *bufio.Reader
	off     int64 // offset of the next byte
	tooLong uint64
	buf     []byte
}

func newLineReader(r io.Reader, off int64) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 256<<10), off: off}
}

// next returns the next complete line (with its newline) and its offset.
// At the end it returns ok false and the length of a torn tail.
func (lr *lineReader) next() (off int64, line string, ok bool, torn int, err error) {
	for {
		start := lr.off
		lr.buf = lr.buf[:0]
		long := false
		for {
			chunk, rerr := lr.br.ReadSlice('\n')
			lr.off += int64(len(chunk))
			if !long {
				if len(lr.buf)+len(chunk) > records.MaxLineLen+2 {
					long = true
					lr.buf = lr.buf[:0]
				} else {
					lr.buf = append(lr.buf, chunk...)
				}
			}
			err = rerr
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF { // what is left is torn
				return start, "", false, int(lr.off - start), nil
			}
			if err != nil {
				return start, "", false, 0, err
			}
			break
		}
		if long {
			lr.tooLong++
			continue
		}
		return start, string(lr.buf), true, 0, nil
	}
}
