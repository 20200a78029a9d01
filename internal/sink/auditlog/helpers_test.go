package auditlog

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var allPolicies = []FlushPolicy{FlushNone, FlushIncremental, FlushIncrementalAsync, FlushData, FlushSync}

// testLine is line seq of a test log: an audit-like record whose length
// varies (49–370 bytes) so that writes end at every offset of a page.
func testLine(seq int) []byte {
	pad := 20 + (seq*7919)%300
	return fmt.Appendf(nil, "type=CONTAINER_OP msg=audit(1700000000.%03d:%d): seq=%d pad=%s end",
		seq%1000, seq, seq, strings.Repeat(string(rune('a'+seq%26)), pad))
}

// bigLine is line seq of a test log of lines over 4 MiB, long enough
// that a write(2) of one is not done in one step (ext4 copies large folios
// of up to 2 MiB at a time, checking for a fatal signal between them).
func bigLine(seq int) []byte {
	pad := 4<<20 + (seq*7919)%4096
	return fmt.Appendf(nil, "type=CONTAINER_OP msg=audit(1700000000.%03d:%d): seq=%d pad=%s end",
		seq%1000, seq, seq, strings.Repeat(string(rune('a'+seq%26)), pad))
}

// fixedLine is line seq of a test log whose lines are all 100 bytes with
// their '\n', for rotation tests.
func fixedLine(seq int) []byte {
	l := fmt.Appendf(nil, "type=CONTAINER_OP msg=audit(1700000000.000:%d): seq=%06d pad=", seq, seq)
	l = append(l, bytes.Repeat([]byte{'x'}, 99-len(l)-len(" end"))...)
	return append(l, " end"...)
}

var lineRE = regexp.MustCompile(`^type=CONTAINER_OP msg=audit\(1700000000\.\d{3}:(\d+)\): seq=0*(\d+) pad=[a-z]+ end$`)

// lineSeq parses a line made by gen (testLine, bigLine, fixedLine) and
// checks it is exactly the line of its sequence number.
func lineSeq(line string, gen func(int) []byte) (int, error) {
	m := lineRE.FindStringSubmatch(line)
	if m == nil || m[1] != m[2] {
		return 0, fmt.Errorf("malformed line %.80q", line)
	}
	seq, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, err
	}
	if line != string(gen(seq)) {
		return 0, fmt.Errorf("line %d is not the line written: %.80q", seq, line)
	}
	return seq, nil
}

// readLines returns the lines of a file that must end with '\n'.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: …%q", path, b[max(0, len(b)-40):])
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// checkSeqs checks that lines are exactly the lines from, from+1, … made
// by gen, and returns the number after the last.
func checkSeqs(t *testing.T, name string, lines []string, from int, gen func(int) []byte) int {
	t.Helper()
	for i, l := range lines {
		seq, err := lineSeq(l, gen)
		if err != nil {
			t.Fatalf("%s line %d: %v", name, i+1, err)
		}
		if seq != from {
			t.Fatalf("%s line %d: seq %d, want %d", name, i+1, seq, from)
		}
		from++
	}
	return from
}

// writeFixed writes fixedLine(from) … fixedLine(to-1) to w; an error fails t.
func writeFixed(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for seq := from; seq < to; seq++ {
		if err := w.WriteLine(fixedLine(seq)); err != nil {
			t.Fatalf("line %d: %v", seq, err)
		}
	}
}

// closeAndCheckSplit closes w and checks that fixedLine's lines run from 0
// in the file at old (named name), through line split-1, and on in the
// file at path.
func closeAndCheckSplit(t *testing.T, w *Writer, name, old, path string, split int) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if next := checkSeqs(t, name, readLines(t, old), 0, fixedLine); next != split {
		t.Errorf("%s ends at line %d, want %d", name, next-1, split-1)
	}
	checkSeqs(t, "audit.log", readLines(t, path), split, fixedLine)
}

func mustOpen(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() }) // for tests that fail before closing it
	return w
}

// checkAccounting checks that every line given to WriteLine is counted
// once.
func checkAccounting(t *testing.T, w *Writer, given int) {
	t.Helper()
	st := w.Stats()
	if got := st.Lines + uint64(st.Buffered) + uint64(st.Queued) + st.Dropped.Total(); got != uint64(given) {
		t.Errorf("Lines %d + Buffered %d + Queued %d + Dropped %d = %d, want %d given (%+v)",
			st.Lines, st.Buffered, st.Queued, st.Dropped.Total(), got, given, st)
	}
}
