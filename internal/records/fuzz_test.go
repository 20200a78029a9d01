package records

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The seed corpora are committed under testdata/fuzz/: lines in the
// kernel's and auditd's formats (hand-written, as in testdata/*.log) and
// every crasher found so far. Run with
//
//	go test -fuzz FuzzParseLine ./internal/records
//	go test -fuzz FuzzParseMessage ./internal/records

// FuzzParseLine checks the package's round-trip contract: a line ParseLine
// accepts comes back byte for byte from AppendRaw; formatting its fields
// again (Raw cleared) gives a line that parses to the same node, type,
// stamp and fields; and the other formats stay one line / valid JSON.
func FuzzParseLine(f *testing.F) {
	f.Add(benchSyscall)
	f.Add(benchUser)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLine(line)
		if err != nil {
			return
		}
		checkRoundTrip(t, strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), r)
	})
}

// FuzzParseMessage checks that ParseMessage builds Raw as auditd's
// format_raw does and that the result obeys ParseLine's contract.
func FuzzParseMessage(f *testing.F) {
	f.Add(uint16(1300), []byte("audit(1700000000.123:42): arch=c000003e syscall=59"))
	f.Fuzz(func(t *testing.T, typ uint16, payload []byte) {
		r, err := ParseMessage(Type(typ), payload)
		if err != nil {
			return
		}
		if want := auditdLine(Type(typ), payload); r.Raw != want {
			t.Fatalf("Raw = %q, auditd writes %q", r.Raw, want)
		}
		if r.Type != Type(typ) {
			t.Fatalf("Type = %d, want %d", r.Type, typ)
		}
		checkRoundTrip(t, r.Raw, r)
	})
}

// auditdLine is auditd 3.0.9's format_raw written plainly: the payload up
// to its first NUL after "type=NAME msg=", newlines as spaces, one
// trailing space dropped.
func auditdLine(t Type, payload []byte) string {
	if i := bytes.IndexByte(payload, 0); i >= 0 {
		payload = payload[:i]
	}
	s := "type=" + t.RawName() + " msg=" + strings.ReplaceAll(string(payload), "\n", " ")
	return strings.TrimSuffix(s, " ")
}

func checkRoundTrip(t *testing.T, line string, r Record) {
	t.Helper()
	if got := string(AppendRaw(nil, &r)); got != line {
		t.Fatalf("AppendRaw = %q, want the line %q", got, line)
	}
	own := r
	own.Raw = ""
	out := string(AppendRaw(nil, &own))
	if strings.ContainsAny(out, "\n\x00") {
		t.Fatalf("formatted fields of %q break the line: %q", line, out)
	}
	again, err := ParseLine(out)
	if err != nil {
		t.Fatalf("formatted fields of %q:\n%q\ndo not parse: %v", line, out, err)
	}
	if again.Node != r.Node || again.Type != r.Type || again.Stamp != r.Stamp {
		t.Fatalf("header changed: %q → %q", line, out)
	}
	if len(again.Fields) != len(r.Fields) {
		t.Fatalf("%d fields became %d:\n%q\n%q\n%+v\n%+v", len(r.Fields), len(again.Fields), line, out, r.Fields, again.Fields)
	}
	for i, f := range r.Fields {
		if again.Fields[i] != f {
			t.Fatalf("field %d %+v became %+v:\n%q\n%q", i, f, again.Fields[i], line, out)
		}
	}
	if in := AppendInterpreted(nil, &r, time.UTC); bytes.ContainsAny(in, "\n\r\x00\x1b\x1d") {
		t.Fatalf("interpreted output of %q holds control bytes: %q", line, in)
	}
	if js := AppendJSON(nil, &r); !json.Valid(js) {
		t.Fatalf("invalid JSON for %q: %s", line, js)
	}
}

// TestRoundTripGrammar feeds the round-trip check lines assembled from the
// pieces that matter to the grammar (quotes, msg=', 0x1D, (null), hex, …),
// which the byte-level fuzzer finds only slowly. Deterministic.
func TestRoundTripGrammar(t *testing.T) {
	pieces := []string{
		" ", " ", " ", "=", "a", "comm", "msg", "key", "a1", "'", "'", "\"", "msg='", "comm=\"", "\x1d",
		"(null)", "4142", "ABC", "x y", "é", "\xff", "\t", "{", "}", "UID=", "res=success", "=x", "''", "\"\"", "\r", "a0=", "a2[1]=", "proctitle=", "00",
	}
	heads := []string{"type=USER msg=audit(1.000:1):", "node=n type=EXECVE msg=audit(1.5:4294967296):", "type=UNKNOWN[2901] msg=audit(0.999:0):"}
	seed := uint64(1)
	rnd := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	accepted := 0
	for i := 0; i < 200000; i++ {
		var sb strings.Builder
		sb.WriteString(heads[rnd(len(heads))])
		sb.WriteByte(' ')
		for n := rnd(12); n >= 0; n-- {
			sb.WriteString(pieces[rnd(len(pieces))])
		}
		line := sb.String()
		r, err := ParseLine(line)
		if err != nil {
			continue
		}
		accepted++
		checkRoundTrip(t, strings.TrimSuffix(line, "\r"), r)
	}
	if accepted < 10000 {
		t.Errorf("only %d lines accepted; the generator needs work", accepted)
	}
}
