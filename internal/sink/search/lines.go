package search

import (
	"bufio"
	"io"

	"github.com/contid/contid/internal/records"
)

// lineReader reads whole lines from a section of a file. A line longer
// than records.MaxLineLen is returned without its text, never held in
// memory; the bytes after the last newline are the torn tail.
type lineReader struct {
	br  *bufio.Reader
	off int64 // offset of the next byte
	buf []byte
}

func newLineReader(r io.Reader, off int64) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 256<<10), off: off}
}

// next returns the next complete line (with its newline) and its offset,
// or a too-long line as long true and no text. At the end it returns ok
// false and the length of a torn tail.
func (lr *lineReader) next() (off int64, line string, long, ok bool, torn int, err error) {
	start := lr.off
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.off += int64(len(chunk))
		if !long {
			if len(lr.buf)+len(chunk) > records.MaxLineLen+2 {
				long = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF: // what is left is torn
			return start, "", false, false, int(lr.off - start), nil
		case err != nil:
			return start, "", false, false, 0, err
		case long:
			return start, "", true, true, 0, nil
		}
		return start, string(lr.buf), false, true, 0, nil
	}
}
