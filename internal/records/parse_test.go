package records

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func pf(k, v string) Field { return Field{Key: k, Value: v} }

func ef(k, v string, e Enc) Field { return Field{Key: k, Value: v, Enc: e} }

func inMsg(f Field) Field { f.InMsg = true; return f }

func enriched(f Field) Field { f.Enriched = true; return f }

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Record // Raw is checked separately
	}{
		{
			name: "syscall with hex comm and (null) key",
			line: `type=SYSCALL msg=audit(1700000001.007:4243): arch=c000003e syscall=257 a0=ffffff9c comm=6D792070726F67 exe="/usr/bin/x" key=(null)`,
			want: Record{Type: 1300, Stamp: Stamp{1700000001, 7, 4243}, Fields: []Field{
				pf("arch", "c000003e"), pf("syscall", "257"), pf("a0", "ffffff9c"),
				ef("comm", "my prog", Hex), ef("exe", "/usr/bin/x", Quoted), ef("key", "(null)", Null),
			}},
		},
		{
			name: "hex-looking bare values stay text outside HexFields",
			line: `type=SYSCALL msg=audit(1.000:1): a0=ABCD a1=1234 items=00`,
			want: Record{Type: 1300, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("a0", "ABCD"), pf("a1", "1234"), pf("items", "00"),
			}},
		},
		{
			name: "execve arguments",
			line: `type=EXECVE msg=audit(1.000:1): argc=3 a0="ls" a1=2D6C20612062 a2_len=4 a2[0]=41 a2[1]=4243 a3=abcd a4=ABC`,
			want: Record{Type: 1309, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("argc", "3"), ef("a0", "ls", Quoted), ef("a1", "-l a b", Hex), pf("a2_len", "4"),
				ef("a2[0]", "A", Hex), ef("a2[1]", "BC", Hex), pf("a3", "abcd"), pf("a4", "ABC"),
			}},
		},
		{
			name: "proctitle",
			line: `type=PROCTITLE msg=audit(1.000:1): proctitle=6C73002D6C`,
			want: Record{Type: 1327, Stamp: Stamp{1, 0, 1}, Fields: []Field{ef("proctitle", "ls\x00-l", Hex)}},
		},
		{
			name: "node prefix, unknown type number, big serial",
			line: `node=web01 type=UNKNOWN[2901] msg=audit(1700000100.500:4294967296): record=1 contid=7,^3,9`,
			want: Record{Node: "web01", Type: ContainerID, Stamp: Stamp{1700000100, 500, 1 << 32}, Fields: []Field{
				pf("record", "1"), pf("contid", "7,^3,9"),
			}},
		},
		{
			name: "contid name and decimal type accepted",
			line: `type=CONTAINER_ID msg=audit(1.000:1): record=1 contid=4`,
			want: Record{Type: ContainerID, Stamp: Stamp{1, 0, 1}, Fields: []Field{pf("record", "1"), pf("contid", "4")}},
		},
		{
			name: "decimal type",
			line: `type=1300 msg=audit(1.000:1): a=b`,
			want: Record{Type: 1300, Stamp: Stamp{1, 0, 1}, Fields: []Field{pf("a", "b")}},
		},
		{
			name: "short milliseconds read as ausearch reads them",
			line: `type=EOE msg=audit(1700000001.5:43):`,
			want: Record{Type: 1320, Stamp: Stamp{1700000001, 5, 43}},
		},
		{
			name: "eoe with trailing space",
			line: `type=EOE msg=audit(1.000:1): `,
			want: Record{Type: 1320, Stamp: Stamp{1, 0, 1}},
		},
		{
			name: "user record: msg flattened",
			line: `type=USER_START msg=audit(1.000:1): pid=4990 uid=0 msg='op=PAM:session_open acct="root" exe="/usr/bin/su" hostname=? res=success'`,
			want: Record{Type: 1105, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("pid", "4990"), pf("uid", "0"),
				inMsg(pf("op", "PAM:session_open")), inMsg(ef("acct", "root", Quoted)),
				inMsg(ef("exe", "/usr/bin/su", Quoted)), inMsg(pf("hostname", "?")), inMsg(pf("res", "success")),
			}},
		},
		{
			name: "user record: msg ends at the last quote",
			line: `type=USER msg=audit(1.000:1): pid=1 msg='op=x note=it's res=ok'`,
			want: Record{Type: 1005, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("pid", "1"), inMsg(pf("op", "x")), inMsg(pf("note", "it's")), inMsg(pf("res", "ok")),
			}},
		},
		{
			name: "user record: free text kept as Single",
			line: `type=USER msg=audit(1.000:1): pid=1 msg='hello there, world'`,
			want: Record{Type: 1005, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("pid", "1"), ef("msg", "hello there, world", Single),
			}},
		},
		{
			name: "user record: unparseable msg kept as Single",
			line: "type=USER msg=audit(1.000:1): pid=1 msg='a=\"b c=\td'",
			want: Record{Type: 1005, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("pid", "1"), ef("msg", "a=\"b c=\td", Single),
			}},
		},
		{
			name: "other single-quoted values",
			line: `type=DM_CTRL msg=audit(1.000:1): error_msg='success' res=1`,
			want: Record{Type: 1338, Stamp: Stamp{1, 0, 1}, Fields: []Field{ef("error_msg", "success", Single), pf("res", "1")}},
		},
		{
			name: "avc: keyless tokens and double spaces",
			line: `type=AVC msg=audit(1.000:1): avc:  denied  { read } for  pid=3 comm="x"`,
			want: Record{Type: 1400, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("", "avc:"), pf("", "denied"), pf("", "{"), pf("", "read"), pf("", "}"), pf("", "for"),
				pf("pid", "3"), ef("comm", "x", Quoted),
			}},
		},
		{
			name: "empty values and odd tokens",
			line: `type=USER msg=audit(1.000:1): a= =b c=d=e f="" g=x"y`,
			want: Record{Type: 1005, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("a", ""), pf("", "=b"), pf("c", "d=e"), ef("f", "", Quoted), pf("g", `x"y`),
			}},
		},
		{
			name: "enriched",
			line: "type=SYSCALL msg=audit(1.000:1): syscall=42 uid=0\x1dSYSCALL=connect UID=\"root\" SADDR={ saddr_fam=inet }",
			want: Record{Type: 1300, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("syscall", "42"), pf("uid", "0"),
				enriched(pf("SYSCALL", "connect")), enriched(ef("UID", "root", Quoted)),
				enriched(pf("SADDR", "{")), enriched(pf("saddr_fam", "inet")), enriched(pf("", "}")),
			}},
		},
		{
			name: "enriched user record",
			line: "type=USER_END msg=audit(1.000:1): pid=1 uid=0 msg='op=x res=success'\x1dUID=\"root\"",
			want: Record{Type: 1106, Stamp: Stamp{1, 0, 1}, Fields: []Field{
				pf("pid", "1"), pf("uid", "0"), inMsg(pf("op", "x")), inMsg(pf("res", "success")),
				enriched(ef("UID", "root", Quoted)),
			}},
		},
		{
			name: "quoted values keep spaces and other bytes",
			line: "type=USER msg=audit(1.000:1): a=\"x y='z'\" b=\"é\"",
			want: Record{Type: 1005, Stamp: Stamp{1, 0, 1}, Fields: []Field{ef("a", "x y='z'", Quoted), ef("b", "é", Quoted)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, suffix := range []string{"", "\n", "\r\n"} {
				got, err := ParseLine(tt.line + suffix)
				if err != nil {
					t.Fatalf("ParseLine(%q): %v", tt.line+suffix, err)
				}
				if got.Raw != tt.line {
					t.Errorf("Raw = %q, want %q", got.Raw, tt.line)
				}
				got.Raw = ""
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ParseLine(%q)\n got %+v\nwant %+v", tt.line, got, tt.want)
				}
			}
		})
	}
}

func TestParseLineErrors(t *testing.T) {
	tests := []struct {
		line string
		want string // in the message
		is   error
	}{
		{"", "no type=", ErrSyntax},
		{"garbage", "no type=", ErrSyntax},
		{"node=x", "node= but no record", ErrSyntax},
		{"node=x garbage", "no type=", ErrSyntax},
		{"type=SYSCALL", "no msg=audit(...) stamp", ErrSyntax},
		{"type=SYSCALL msg=1", "no msg=audit(...) stamp", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1)", "no ':' after ')'", ErrSyntax},
		{"type=SYSCALL msg=audit(.000:1):", "seconds", ErrSyntax},
		{"type=SYSCALL msg=audit(1:1):", "seconds", ErrSyntax},
		{"type=SYSCALL msg=audit(-1.000:1):", "seconds", ErrSyntax},
		{"type=SYSCALL msg=audit(1.0000:1):", "milliseconds", ErrSyntax},
		{"type=SYSCALL msg=audit(1.:1):", "milliseconds", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:):", "serial", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1", "serial", ErrSyntax},
		{"type=SYSCALL msg=audit(9223372036854775808.000:1):", "seconds out of range", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:18446744073709551616):", "serial out of range", ErrSyntax},
		{"type=FOO msg=audit(1.000:1):", `unknown record type "FOO"`, ErrUnknownType},
		{"type=UNKNOWN[65536] msg=audit(1.000:1):", "unknown record type", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1):a=1", "text right after the stamp", ErrSyntax},
		{`type=SYSCALL msg=audit(1.000:1): comm="x`, "unterminated double quote", ErrSyntax},
		{`type=SYSCALL msg=audit(1.000:1): comm="x"y`, "text right after the closing quote", ErrSyntax},
		{`type=USER msg=audit(1.000:1): msg='x`, "unterminated single quote", ErrSyntax},
		{`type=USER msg=audit(1.000:1): msg='x'y`, "text right after the closing quote", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): a=\x01", "control byte", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): \x7f=1", "control byte in key", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): tab\there", "control byte", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): a=\"x\ry\"", "control byte in quoted value", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): a=1\x00b=2", "NUL", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): a=1\nb=2", "newline", ErrSyntax},
		{"node=a\x01 type=SYSCALL msg=audit(1.000:1):", "node name", ErrSyntax},
		{"type=SYSCALL msg=audit(1.000:1): a=" + strings.Repeat("x", MaxLineLen), "longer than MaxLineLen", ErrTooLong},
	}
	for _, tt := range tests {
		r, err := ParseLine(tt.line)
		if err == nil {
			t.Errorf("ParseLine(%.60q) = %+v, want an error", tt.line, r)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.is) {
			t.Errorf("ParseLine(%.60q) error %q, want one containing %q and wrapping %v", tt.line, err, tt.want, tt.is)
		}
		if !strings.HasPrefix(err.Error(), "records: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
		if len(err.Error()) > 200 {
			t.Errorf("error for hostile input is %d bytes long", len(err.Error()))
		}
	}
}

func TestParseLineMaxLen(t *testing.T) {
	head := "type=SYSCALL msg=audit(1.000:1): a="
	line := head + strings.Repeat("x", MaxLineLen-len(head))
	if _, err := ParseLine(line + "\r\n"); err != nil {
		t.Errorf("line of exactly MaxLineLen refused: %v", err)
	}
	if _, err := ParseLine(line + "x"); !errors.Is(err, ErrTooLong) {
		t.Errorf("line of MaxLineLen+1: %v, want ErrTooLong", err)
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name    string
		t       Type
		payload string
		raw     string
	}{
		{
			name:    "syscall",
			t:       1300,
			payload: "audit(1700000000.123:42): arch=c000003e syscall=59 comm=\"ls\"",
			raw:     "type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 comm=\"ls\"",
		},
		{
			// Recorded: the one record this machine's kernel printed at
			// boot (dmesg: "audit: type=2000 audit(…): …").
			name:    "recorded KERNEL from dmesg",
			t:       2000,
			payload: "audit(1795187978.017:1): state=initialized audit_enabled=0 res=1",
			raw:     "type=KERNEL msg=audit(1795187978.017:1): state=initialized audit_enabled=0 res=1",
		},
		{
			name:    "eoe: the header's trailing space is trimmed",
			t:       1320,
			payload: "audit(1.000:1): ",
			raw:     "type=EOE msg=audit(1.000:1):",
		},
		{
			name:    "NUL terminated user record",
			t:       1105,
			payload: "audit(1.000:1): pid=1 msg='op=x res=success'\x00junk",
			raw:     "type=USER_START msg=audit(1.000:1): pid=1 msg='op=x res=success'",
		},
		{
			name:    "trailing newline becomes a space and is trimmed",
			t:       1105,
			payload: "audit(1.000:1): pid=1 msg='op=x'\n",
			raw:     "type=USER_START msg=audit(1.000:1): pid=1 msg='op=x'",
		},
		{
			name:    "only one trailing space is trimmed",
			t:       1300,
			payload: "audit(1.000:1): a=1 \n",
			raw:     "type=SYSCALL msg=audit(1.000:1): a=1 ",
		},
		{
			name:    "inner newlines become spaces",
			t:       1105,
			payload: "audit(1.000:1): pid=1 msg='op=x\nres=success'",
			raw:     "type=USER_START msg=audit(1.000:1): pid=1 msg='op=x res=success'",
		},
		{
			name:    "contid's types are written UNKNOWN[n]",
			t:       ContainerOp,
			payload: "audit(1.000:1): pid=1 msg='op=set opid=2 contid=4 res=success'",
			raw:     "type=UNKNOWN[2900] msg=audit(1.000:1): pid=1 msg='op=set opid=2 contid=4 res=success'",
		},
		{
			name:    "types named after 3.0.9 are written UNKNOWN[n]",
			t:       1338,
			payload: "audit(1.000:1): op=ctr",
			raw:     "type=UNKNOWN[1338] msg=audit(1.000:1): op=ctr",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseMessage(tt.t, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if r.Raw != tt.raw {
				t.Errorf("Raw = %q, want %q", r.Raw, tt.raw)
			}
			if r.Type != tt.t {
				t.Errorf("Type = %d, want %d", r.Type, tt.t)
			}
			again, err := ParseLine(r.Raw)
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("ParseLine(Raw) = %+v, %v; want %+v", again, err, r)
			}
		})
	}
}

func TestParseMessageErrors(t *testing.T) {
	for _, p := range []string{
		"", "\x00", "\n", "garbage", "audit(1.000:1)", "audit(x.000:1): a=1",
		"audit(1.000:1): a=\x01", strings.Repeat("a", MaxLineLen+1),
	} {
		if r, err := ParseMessage(1300, []byte(p)); err == nil {
			t.Errorf("ParseMessage(%.40q) = %+v, want an error", p, r)
		}
	}
}

// Parsing shares the line's memory: only the field slice and decoded hex
// values are allocated.
func TestParseLineAllocs(t *testing.T) {
	line := `type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c2a8e0a0 a1=55d0c2a8e0c8 a2=55d0c2a8e0f0 a3=8 items=2 ppid=2310 pid=2342 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="cat" exe="/usr/bin/cat" subj=unconfined key="exec"`
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseLine(line) }); n != 1 {
		t.Errorf("ParseLine allocates %v times, want 1", n)
	}
	eoe := `type=EOE msg=audit(1700000000.123:4242):`
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseLine(eoe) }); n != 0 {
		t.Errorf("ParseLine(EOE) allocates %v times, want 0", n)
	}
}
