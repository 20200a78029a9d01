package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteLines: a block of lines is written whole under every policy; at
// the size limit it goes line by line, rotating where WriteLine would; a
// bad block is refused whole.
func TestWriteLines(t *testing.T) {
	for _, pol := range []FlushPolicy{FlushIncrementalAsync, FlushIncremental, FlushNone, FlushData, FlushSync} {
		t.Run(pol.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w, err := Open(Config{Path: path, Flush: pol, MaxBytes: 1000, NumLogs: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for b := 0; b < 10; b++ {
				var block strings.Builder
				for i := 0; i < 5; i++ {
					fmt.Fprintf(&block, "type=SYSCALL msg=audit(1.000:%d): block=%d line=%d\n", b*5+i, b, i)
				}
				all.WriteString(block.String())
				if err := w.WriteLines([]byte(block.String())); err != nil {
					t.Fatal(err)
				}
			}
			for _, bad := range []string{"", "no newline", "a\n\nb\n", "\n", "a\r\n"} {
				if err := w.WriteLines([]byte(bad)); !errors.Is(err, ErrBadLine) || !errors.Is(err, ErrDropped) {
					t.Errorf("%q: %v", bad, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.Lines != 50 || st.Rotations == 0 || st.Dropped.BadLine != 7 { // a refused block counts its newlines (at least 1)
				t.Errorf("stats %+v", st)
			}
			// The rotated files and the current one hold every line once, in order.
			var got string
			for _, p := range []string{path + ".2", path + ".1", path} {
				b, err := os.ReadFile(p)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if len(b) > 1000 {
					t.Errorf("%s: %d bytes, limit 1000", p, len(b))
				}
				got += string(b)
			}
			if !strings.HasSuffix(all.String(), got) || got == "" {
				t.Errorf("files hold:\n%s\nnot a tail of what was written", got)
			}
		})
	}
}

// TestWriteLinesIgnore: past the size limit with max size action ignore,
// blocks are written on, whole.
func TestWriteLinesIgnore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(Config{Path: path, MaxBytes: 100, MaxAction: Ignore}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for b := 0; b < 10; b++ {
		block := fmt.Sprintf("type=SYSCALL msg=audit(1.000:%d): a=1\ntype=EOE msg=audit(1.000:%d):\n", b, b)
		all.WriteString(block)
		if err := w.WriteLines([]byte(block)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if b, _ := os.ReadFile(path); string(b) != all.String() || w.Stats().Lines != 20 || w.Stats().Rotations != 0 {
		t.Fatalf("file:\n%s\nstats %+v", b, w.Stats())
	}
}
