package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/testing/golden"
	"github.com/contid/contid/internal/testing/pipelinetest"
)

// TestGoldenExample parses testdata/example.rules (the documented example)
// and decides every event of testdata/events.log (hand-written events with
// the CONTAINER_ID records contid attaches; see testdata/README.md). The
// golden file holds the rules in canonical form, then each event's view and
// decision.
func TestGoldenExample(t *testing.T) {
	set := parseFile(t, "testdata/example.rules")
	var b strings.Builder
	b.WriteString(set.String())
	fmt.Fprintf(&b, "streams: %s\n\n", strings.Join(set.Streams(), " "))
	var v View
	for _, ev := range pipelinetest.Events(t, "testdata/events.log") {
		var chains []contid.Chain
		for _, r := range ev {
			if r.Type != records.ContainerID {
				continue
			}
			s, _ := r.Get("contid")
			l, err := contid.ParseList(s)
			if err != nil {
				t.Fatal(err)
			}
			chains = append(chains, l...)
		}
		v.Fill(ev, chains)
		d := set.Decide(v)
		fmt.Fprintf(&b, "%d.%03d:%d %s\n  -> %s\n", ev[0].Stamp.Sec, ev[0].Stamp.Msec, ev[0].Stamp.Serial, describe(&v), decision(set, d))
	}
	golden.Check(t, "testdata/example.golden", []byte(b.String()))

	// The canonical form reads back as itself.
	again, err := Parse(strings.NewReader(set.String()), "canonical")
	if err != nil {
		t.Fatal(err)
	}
	if again.String() != set.String() {
		t.Errorf("canonical form changed on reparse:\n%s\nvs\n%s", again, set)
	}
}

// TestGoldenErrors parses testdata/bad.rules and compares the errors.
func TestGoldenErrors(t *testing.T) {
	f, err := os.Open("testdata/bad.rules")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := Parse(f, "bad.rules")
	if set != nil || err == nil {
		t.Fatal("bad.rules parsed")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 {
		t.Errorf("errors.As: %v", e)
	}
	golden.Check(t, "testdata/bad.golden", []byte(err.Error()+"\n"))
}

func describe(v *View) string {
	var b strings.Builder
	b.WriteString("types=")
	for i, t := range v.Types {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.String())
	}
	b.WriteString(" chains=")
	if len(v.Chains) == 0 {
		b.WriteString("none")
	}
	for i, c := range v.Chains {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c.String())
	}
	if v.Keys != "" {
		fmt.Fprintf(&b, " keys=%q", v.Keys)
	}
	if v.Has&HasPID != 0 {
		fmt.Fprintf(&b, " pid=%d", v.PID)
	}
	if v.Has&HasAUID != 0 {
		fmt.Fprintf(&b, " auid=%d", v.AUID)
	}
	if v.Has&HasSyscall != 0 {
		fmt.Fprintf(&b, " syscall=%d", v.Syscall)
	}
	if v.Has&HasArch != 0 {
		fmt.Fprintf(&b, " arch=%x", v.Arch)
	}
	if v.Has&HasExe != 0 {
		fmt.Fprintf(&b, " exe=%s", v.Exe)
	}
	return b.String()
}

func decision(s *Set, d Decision) string {
	var b strings.Builder
	if d.Drop {
		b.WriteString("drop")
	} else {
		b.WriteString("keep " + d.Routes.String())
	}
	if d.Rule < 0 {
		b.WriteString(" (no rule: default)")
	} else {
		fmt.Fprintf(&b, " (rule %d, line %d)", d.Rule, s.Line(d.Rule))
	}
	return b.String()
}

func parseFile(t testing.TB, path string) *Set {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set, err := Parse(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return set
}
