package auditnl

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ruleCaptured returns the datagrams in testdata/captured/rules by kind
// (the file name without linux-RELEASE- and .bin).
func ruleCaptured(t testing.TB) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for name, b := range readCaptured(t, ruleCapturedDir, "go test -run TestCaptureRuleSeeds -args -update, as root") {
		kind := strings.TrimSuffix(name, ".bin")
		if _, rest, ok := strings.Cut(strings.TrimPrefix(kind, "linux-"), "-"); ok {
			kind = rest
		}
		m[kind] = b
	}
	return m
}

// TestDecodeRulesCaptured replays the kernel's answer to AUDIT_LIST_RULES
// for rules auditctl loaded (see captureRules) and its refusal of a
// duplicate AUDIT_ADD_RULE.
func TestDecodeRulesCaptured(t *testing.T) {
	dg := ruleCaptured(t)
	payload := func(kind string) []byte {
		t.Helper()
		msgs, err := Decode(dg[kind])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: %d messages, %v", kind, len(msgs), err)
		}
		return msgs[0].Data
	}
	const (
		arch64 = unix.AUDIT_ARCH_X86_64
		perm   = 106 // AUDIT_PERM
	)
	allSyscalls := [ruleMaskWords]uint32{}
	for i := range allSyscalls {
		allSyscalls[i] = 0xffffffff
	}
	allSyscalls[ruleMaskWords-1] = 0xffff // the kernel clears the class bits it expanded
	var execveMask [ruleMaskWords]uint32
	execveMask[unix.SYS_EXECVE/32] = 1 << (unix.SYS_EXECVE % 32)
	want := map[string]struct {
		r       Rule
		strings []string
	}{
		"list-execve": {Rule{Flags: unix.AUDIT_FILTER_EXIT, Action: unix.AUDIT_ALWAYS, Mask: execveMask, Fields: []RuleField{
			{unix.AUDIT_ARCH, unix.AUDIT_EQUAL, arch64},
			{unix.AUDIT_LOGINUID, unix.AUDIT_GREATER_THAN_OR_EQUAL, 1000},
			{unix.AUDIT_FILTERKEY, unix.AUDIT_EQUAL, 14},
		}, Buf: []byte("contid-capture")}, []string{"contid-capture"}},
		"list-watch": {Rule{Flags: unix.AUDIT_FILTER_EXIT, Action: unix.AUDIT_ALWAYS, Mask: allSyscalls, Fields: []RuleField{
			{unix.AUDIT_WATCH, unix.AUDIT_EQUAL, 11},
			{perm, unix.AUDIT_EQUAL, unix.AUDIT_PERM_WRITE | unix.AUDIT_PERM_ATTR},
			{unix.AUDIT_FILTERKEY, unix.AUDIT_EQUAL, 9},
		}, Buf: []byte("/etc/passwdcontid-pw")}, []string{"/etc/passwd", "contid-pw"}},
		"list-exclude": {Rule{Flags: unix.AUDIT_FILTER_EXCLUDE, Action: unix.AUDIT_NEVER, Mask: allSyscalls, Fields: []RuleField{
			{unix.AUDIT_MSGTYPE, unix.AUDIT_GREATER_THAN_OR_EQUAL, 1100},
			{unix.AUDIT_MSGTYPE, unix.AUDIT_LESS_THAN_OR_EQUAL, 1199},
		}, Buf: []byte{}}, nil},
	}
	for kind, w := range want {
		data := payload(kind)
		r, err := ParseRule(data)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !reflect.DeepEqual(r, w.r) {
			t.Errorf("%s:\n got %+v\nwant %+v", kind, r, w.r)
		}
		if got := r.Strings(); !slices.Equal(got, w.strings) {
			t.Errorf("%s: strings %q, want %q", kind, got, w.strings)
		}
		// Marshal gives back the kernel's bytes, padded to 4.
		m := r.Marshal()
		if !bytes.Equal(m[:len(data)], data) || len(m)%4 != 0 || len(m)-len(data) > 3 {
			t.Errorf("%s: Marshal does not give back the kernel's %d bytes (%d)", kind, len(data), len(m))
		}
		if !r.Equal(w.r) {
			t.Errorf("%s: not Equal to itself", kind)
		}
	}
	if a, b := want["list-execve"].r, want["list-watch"].r; a.Equal(b) {
		t.Error("different rules Equal")
	}
	pre := want["list-execve"].r
	pre.Flags |= unix.AUDIT_FILTER_PREPEND
	if !pre.Equal(want["list-execve"].r) {
		t.Error("a prepended rule is not Equal to the appended one")
	}

	// The dump: datagrams in the order the kernel sent them.
	var got []Rule
	var st answer
	kinds := []string{"list-ack", "list-execve", "list-watch", "list-exclude", "list-done"}
	for _, kind := range kinds {
		d, err := answerMessages(dg[kind], 7, unix.AUDIT_LIST_RULES, func(b []byte) error {
			r, err := ParseRule(b)
			got = append(got, r)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		st.acked, st.done = st.acked || d.acked, st.done || d.done
	}
	if !st.acked || !st.done || len(got) != 3 {
		t.Fatalf("dump: %+v, %d rules", st, len(got))
	}
	// Another request's answers are skipped.
	if d, _ := answerMessages(dg["list-done"], 8, unix.AUDIT_LIST_RULES, nil); d.done {
		t.Error("done of another sequence number taken")
	}
	// The refused duplicate: EEXIST, ending a dump too.
	ack, err := ParseAck(payload("add-eexist"))
	if err != nil || ack.Errno != unix.EEXIST || ack.Request.Type != unix.AUDIT_ADD_RULE {
		t.Fatalf("add-eexist: %+v, %v", ack, err)
	}
	if _, err := answerMessages(dg["add-eexist"], 8, unix.AUDIT_ADD_RULE, nil); !errors.Is(err, unix.EEXIST) {
		t.Errorf("dump of an error ack: %v", err)
	}
}

func TestParseRuleRefuses(t *testing.T) {
	good := Rule{Flags: unix.AUDIT_FILTER_EXIT, Action: unix.AUDIT_ALWAYS, Fields: []RuleField{{unix.AUDIT_FILTERKEY, unix.AUDIT_EQUAL, 3}}, Buf: []byte("key")}
	b := good.Marshal()
	if _, err := ParseRule(b); err != nil {
		t.Fatal(err)
	}
	set := func(b []byte, word int, v uint32) []byte {
		b = bytes.Clone(b)
		b[4*word], b[4*word+1], b[4*word+2], b[4*word+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		if !littleEndian() {
			b[4*word], b[4*word+1], b[4*word+2], b[4*word+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		return b
	}
	bufWord := 3 + ruleMaskWords + 3*ruleMaxFields
	for name, c := range map[string]struct {
		b   []byte
		err error
	}{
		"short header":               {b[:ruleHeaderLen-1], ErrTruncated},
		"65 fields":                  {set(b, 2, 65), ErrMalformed},
		"buffer beyond the data":     {set(b, bufWord, 400), ErrTruncated},
		"string longer than buf":     {set(b, 3+ruleMaskWords+ruleMaxFields, 4), ErrMalformed},
		"buffer longer than strings": {set(set(b, bufWord, 4), 3+ruleMaskWords+ruleMaxFields, 3), ErrMalformed},
	} {
		if _, err := ParseRule(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
}

func littleEndian() bool {
	b := Rule{Flags: 1}.Marshal()
	return b[0] == 1
}

// FuzzParseRule: ParseRule never panics; what it accepts marshals back to
// bytes that parse to the same rule, with strings that fill the buffer.
func FuzzParseRule(f *testing.F) {
	dg := ruleCaptured(f)
	keys := make([]string, 0, len(dg))
	for k := range dg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if msgs, _ := Decode(dg[k]); len(msgs) == 1 {
			f.Add(msgs[0].Data)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRule(b)
		if err != nil {
			return
		}
		back, err := ParseRule(r.Marshal())
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, r)
		}
		n := 0
		for _, s := range r.Strings() {
			n += len(s)
		}
		if n != len(r.Buf) || !r.Equal(back) {
			t.Fatalf("strings take %d of %d bytes", n, len(r.Buf))
		}
	})
}
