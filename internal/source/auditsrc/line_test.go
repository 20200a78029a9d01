package auditsrc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
)

// TestLineIn: auditd's plugin feed is split into records, one per line,
// without their line ends; a line longer than the buffer becomes one
// "oversized line" record (counted malformed downstream), and the lines
// after it are kept.
func TestLineIn(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		in   string
		want []string
	}{
		{"a\nb\r\nc", []string{"a", "b", "c"}},
		{"a\n" + long + "\nb\n", []string{"a", "oversized line", "b"}},
		{"\n\n", []string{"", ""}},
		{"", nil},
	}
	for _, tc := range tests {
		l := &lineIn{r: bufio.NewReaderSize(strings.NewReader(tc.in), 64)}
		var got []string
		for {
			b, err := l.next(nil, nil, 1000)
			for _, m := range b {
				if m.Type != 0 {
					t.Fatalf("%q: a line with type %d", tc.in, m.Type)
				}
				got = append(got, string(m.Data))
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLineIn: any feed splits into records without line ends, and each
// record's bytes are a line of the feed (or the oversized marker).
func FuzzLineIn(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1.2:3): a=b\ntype=EOE msg=audit(1.2:3):\n"))
	f.Add([]byte("\r\n\x00\xff" + strings.Repeat("y", 100)))
	f.Fuzz(func(t *testing.T, feed []byte) {
		l := &lineIn{r: bufio.NewReaderSize(bytes.NewReader(feed), 64)}
		var recs []records.Raw
		for range len(feed) + 2 {
			b, err := l.next(nil, nil, 16)
			recs = append(recs, b...)
			if err != nil {
				break
			}
		}
		for _, r := range recs {
			if bytes.IndexByte(r.Data, '\n') >= 0 {
				t.Fatalf("record %q holds a line end", r.Data)
			}
			if string(r.Data) != "oversized line" && !bytes.Contains(feed, r.Data) {
				t.Fatalf("record %q is not in the feed", r.Data)
			}
		}
	})
}
