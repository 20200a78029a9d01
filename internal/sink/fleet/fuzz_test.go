package fleet

import (
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// FuzzEventOfMsg: a message's data comes from the stream, where any host
// (a compromised one too) may have written it under its own name: any
// bytes give an event or false, never a panic, and a well-formed
// message gives back its lines.
func FuzzEventOfMsg(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=EOE msg=audit(1.000:1):\n"))
	f.Add([]byte("{\"contid\":[]}\ntype=SYSCALL msg=audit(1.000:1): pid=1\n"))
	f.Add([]byte("{"))
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=SYSCALL msg=audit(2.000:2): pid=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, ok := EventOfMsg(data)
		if !ok {
			return
		}
		body := string(data)
		if strings.HasPrefix(body, "{") {
			body = body[strings.IndexByte(body, '\n')+1:]
		}
		for _, l := range ev.Lines {
			if !strings.Contains(body, l) {
				t.Fatalf("line %q not in the message", l)
			}
		}
		ev.Parse()
	})
}

// FuzzParseSubject: subjects round-trip, and no string panics.
func FuzzParseSubject(f *testing.F) {
	f.Add("contid.h.c.1.2.e")
	f.Add("contid.h.h")
	f.Add("contid.h.c.more.e")
	f.Fuzz(func(t *testing.T, s string) {
		host, c, err := ParseSubject(s)
		if err != nil {
			return
		}
		if got := string(AppendSubject(nil, host, c)); got != s && len(c) <= MaxDepth {
			// Only a canonical subject round-trips (no leading zeros).
			if _, c2, err := ParseSubject(got); err != nil || !contid.Chain(c2).Equal(c) {
				t.Fatalf("%q → %q %v → %q", s, host, c, got)
			}
		}
	})
}
