package records

import (
	"strings"
	"testing"
	"time"
)

var stamp = Stamp{Sec: 1700000000, Msec: 5, Serial: 4242}

func TestAppendRaw(t *testing.T) {
	tests := []struct {
		name string
		r    Record
		want string
	}{
		{
			name: "container id",
			r:    Record{Type: ContainerID, Stamp: stamp, Fields: []Field{pf("record", "1"), pf("contid", "4,^2")}},
			want: "type=UNKNOWN[2901] msg=audit(1700000000.005:4242): record=1 contid=4,^2",
		},
		{
			name: "no fields",
			r:    Record{Type: 1320, Stamp: Stamp{Sec: 1, Msec: 999, Serial: 1 << 40}},
			want: "type=EOE msg=audit(1.999:1099511627776):",
		},
		{
			name: "node",
			r:    Record{Node: "web01", Type: 1300, Stamp: stamp, Fields: []Field{pf("a", "1")}},
			want: "node=web01 type=SYSCALL msg=audit(1700000000.005:4242): a=1",
		},
		{
			name: "node that would break the line is hex",
			r:    Record{Node: "a b", Type: 1300, Stamp: stamp},
			want: "node=612062 type=SYSCALL msg=audit(1700000000.005:4242):",
		},
		{
			name: "untrusted as the kernel writes it",
			r: Record{Type: 1300, Stamp: stamp, Fields: []Field{
				ef("comm", "ls", Untrusted), ef("exe", "/opt/my app", Untrusted),
				ef("name", "", Untrusted), ef("key", `a"b`, Untrusted), ef("cwd", "é", Untrusted),
				ef("path", "~!", Untrusted),
			}},
			want: `type=SYSCALL msg=audit(1700000000.005:4242): comm="ls" exe=2F6F70742F6D7920617070 name="" key=612262 cwd=C3A9 path="~!"`,
		},
		{
			name: "quoted, hex, null, single",
			r: Record{Type: 1300, Stamp: stamp, Fields: []Field{
				ef("a", "x y", Quoted), ef("b", "x\"y", Quoted), ef("c", "\x00", Hex), ef("d", "whatever", Null),
				ef("e", "it's", Single),
			}},
			want: `type=SYSCALL msg=audit(1700000000.005:4242): a="x y" b=782279 c=00 d=(null) e='it?s'`,
		},
		{
			name: "plain values that would not parse back are hex",
			r: Record{Type: 1300, Stamp: stamp, Fields: []Field{
				pf("a", "1 res=success"), pf("b", "x\ny"), pf("c", "\x1dUID=root"), pf("d", `"q"`),
				pf("e", "'q'"), pf("f", "(null)"), pf("comm", "ABCD"), pf("g", ""), pf("h", `x"y`),
				pf("i", "é"), pf("j", "a=b"), pf("k", "\x7f"),
			}},
			want: `type=SYSCALL msg=audit(1700000000.005:4242): a=31207265733D73756363657373 b=780A79 c=1D5549443D726F6F74 d=227122 e=277127 f=286E756C6C29 comm=41424344 g= h=x"y i=é j=a=b k=7F`,
		},
		{
			name: "keys that would break the line",
			r:    Record{Type: 1300, Stamp: stamp, Fields: []Field{pf("a b", "1"), pf("c=d", "2"), pf("e\nf", "3")}},
			want: `type=SYSCALL msg=audit(1700000000.005:4242): a_b=1 c_d=2 e_f=3`,
		},
		{
			name: "keyless",
			r:    Record{Type: 1400, Stamp: stamp, Fields: []Field{pf("", "avc:"), pf("", ""), pf("", "a=b"), pf("", "=b"), pf("", "x y")}},
			want: `type=AVC msg=audit(1700000000.005:4242): avc: 613D62 =b 782079`,
		},
		{
			name: "msg run and enriched",
			r: Record{Type: 1105, Stamp: stamp, Fields: []Field{
				pf("pid", "1"), enriched(ef("UID", "root", Quoted)),
				inMsg(pf("op", "x")), inMsg(ef("acct", "root", Untrusted)), inMsg(pf("note", "it's")),
				pf("after", "it's"), inMsg(pf("late", "1")), enriched(pf("AUID", "unset")),
			}},
			want: "type=USER_START msg=audit(1700000000.005:4242): pid=1 msg='op=x acct=\"root\" note=it's' after=69742773 late=1\x1dUID=\"root\" AUID=unset",
		},
		{
			name: "single msg",
			r:    Record{Type: 1005, Stamp: stamp, Fields: []Field{pf("pid", "1"), ef("msg", "free 'text'", Single), ef("x", "'", Quoted)}},
			want: `type=USER msg=audit(1700000000.005:4242): pid=1 msg='free 'text'' x=27`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRaw([]byte("prefix "), &tt.r))
			if got != "prefix "+tt.want {
				t.Errorf("AppendRaw:\n got %q\nwant %q", got, "prefix "+tt.want)
			}
		})
	}
}

func TestAppendRawKeepsRaw(t *testing.T) {
	r := Record{Type: 1300, Raw: "type=SYSCALL msg=audit(1.000:1):  odd  spacing ", Fields: []Field{pf("x", "y")}}
	if got := string(AppendRaw(nil, &r)); got != r.Raw {
		t.Errorf("AppendRaw = %q, want Raw %q", got, r.Raw)
	}
}

// Whatever a caller puts in a field, the line stays one line and parses
// back into the same keys; values of HexFields come back unchanged in
// every encoding.
func TestAppendRawCannotInject(t *testing.T) {
	hostile := []string{
		"", " ", "1 res=success", "x\n", "\r\ntype=SYSCALL msg=audit(1.000:1): uid=0", "\x1dUID=\"root\"",
		`"`, `'`, "' b='", `x" y="z`, "(null)", "ABCD", "\x00", "\xff\xfe", "é ü", "a=b", "=", "\\", "\t",
		"msg='x=1'", strings.Repeat("A", 300),
	}
	for _, enc := range []Enc{Plain, Untrusted, Quoted, Hex, Null, Single, Enc(99)} {
		for _, inner := range []bool{false, true} {
			for _, v := range hostile {
				fields := []Field{pf("pid", "1"), {Key: "comm", Value: v, Enc: enc, InMsg: inner}, {Key: "x", Value: v, Enc: enc, InMsg: inner}, pf("res", "ok")}
				r := Record{Type: 1105, Stamp: stamp, Fields: fields}
				line := string(AppendRaw(nil, &r))
				if strings.ContainsAny(line, "\n\x00") {
					t.Fatalf("enc %d value %q: line breaks: %q", enc, v, line)
				}
				p, err := ParseLine(line)
				if err != nil {
					t.Fatalf("enc %d value %q: %q does not parse: %v", enc, v, line, err)
				}
				var keys []string
				for _, f := range p.Fields {
					if f.Enriched {
						t.Fatalf("enc %d value %q: forged an enriched field in %q", enc, v, line)
					}
					keys = append(keys, f.Key)
				}
				if got := strings.Join(keys, ","); got != "pid,comm,x,res" {
					t.Fatalf("enc %d inner %v value %q: keys %s from %q", enc, inner, v, got, line)
				}
				want := v
				switch enc {
				case Null:
					want = "(null)"
				case Single:
					continue // single quotes cannot carry every byte; checked above that nothing leaks
				}
				if got := p.Fields[1].Value; got != want {
					t.Errorf("enc %d inner %v value %q: comm came back as %q from %q", enc, inner, v, got, line)
				}
			}
		}
	}
}

func TestAppendInterpreted(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name string
		r    Record
		loc  *time.Location
		want string
	}{
		{
			name: "names, decoded values, utc",
			r: Record{Type: ContainerID, Stamp: Stamp{Sec: 1700000000, Msec: 7, Serial: 42}, Fields: []Field{
				pf("record", "1"), pf("contid", "4,^2"),
			}},
			want: "type=CONTAINER_ID msg=audit(11/14/2023 22:13:20.007:42) : record=1 contid=4,^2",
		},
		{
			name: "location and node",
			r:    Record{Node: "h", Type: 1320, Stamp: Stamp{Sec: 1700000000, Msec: 0, Serial: 1}},
			loc:  est,
			want: "node=h type=EOE msg=audit(11/14/2023 17:13:20.000:1) :",
		},
		{
			name: "escaping",
			r: Record{Type: 1300, Stamp: Stamp{Sec: 0, Serial: 1}, Fields: []Field{
				ef("comm", "a\nb\x1b[2J", Hex), ef("exe", `c:\x`, Quoted), ef("name", "\xff\u00e9\u2028", Hex),
				ef("key", "", Null), ef("proctitle", "ls\x00-l\x00", Hex),
			}},
			want: `type=SYSCALL msg=audit(01/01/1970 00:00:00.000:1) : comm=a\012b\033[2J exe=c:\\x name=\377é\342\200\250 key=(null) proctitle=ls -l `,
		},
		{
			name: "enriched interpretations and unset ids",
			r: Record{Type: 1300, Stamp: Stamp{Sec: 0, Serial: 1}, Fields: []Field{
				pf("syscall", "42"), pf("uid", "0"), pf("auid", "4294967295"), pf("ses", "4294967295"), pf("saddr", "0200"),
				enriched(pf("SYSCALL", "connect")), enriched(ef("UID", "root", Quoted)),
				enriched(pf("SADDR", "{")), enriched(pf("saddr_fam", "inet")), enriched(pf("", "}")),
			}},
			want: `type=SYSCALL msg=audit(01/01/1970 00:00:00.000:1) : syscall=connect uid=root auid=unset ses=unset saddr={ saddr_fam=inet }`,
		},
		{
			name: "user record",
			r: Record{Type: 1105, Stamp: Stamp{Sec: 0, Serial: 1}, Fields: []Field{
				pf("pid", "1"), inMsg(pf("op", "x")), inMsg(ef("acct", "a b", Hex)), pf("after", "1"),
			}},
			want: `type=USER_START msg=audit(01/01/1970 00:00:00.000:1) : pid=1 msg='op=x acct=a b' after=1`,
		},
		{
			name: "single",
			r:    Record{Type: 1005, Stamp: Stamp{Sec: 0, Serial: 1}, Fields: []Field{ef("msg", "free text", Single)}},
			want: `type=USER msg=audit(01/01/1970 00:00:00.000:1) : msg='free text'`,
		},
		{
			name: "raw only: parsed first",
			r:    Record{Raw: "type=UNKNOWN[2901] msg=audit(0.000:1): record=1 contid=4"},
			want: `type=CONTAINER_ID msg=audit(01/01/1970 00:00:00.000:1) : record=1 contid=4`,
		},
		{
			name: "raw only, unparseable: printed escaped",
			r:    Record{Raw: "garbage\x1b"},
			want: `garbage\033`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendInterpreted(nil, &tt.r, tt.loc))
			if got != tt.want {
				t.Errorf("AppendInterpreted:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAppendAllocs(t *testing.T) {
	recs := benchRecords()
	buf := make([]byte, 0, 1<<16)
	for name, r := range recs {
		r := r
		for fname, f := range map[string]func(){
			"AppendRaw":         func() { buf = AppendRaw(buf[:0], &r) },
			"AppendInterpreted": func() { buf = AppendInterpreted(buf[:0], &r, time.UTC) },
			"AppendJSON":        func() { buf = AppendJSON(buf[:0], &r) },
		} {
			if n := testing.AllocsPerRun(50, f); n != 0 {
				t.Errorf("%s(%s) allocates %v times", fname, name, n)
			}
		}
	}
}

// benchRecords are typical records, parsed from kernel-format lines and
// built by contid.
func benchRecords() map[string]Record {
	syscall, err := ParseLine(benchSyscall)
	if err != nil {
		panic(err)
	}
	user, err := ParseLine(benchUser)
	if err != nil {
		panic(err)
	}
	own := syscall
	own.Raw = ""
	return map[string]Record{
		"syscall-parsed": syscall,
		"syscall-built":  own,
		"user-parsed":    user,
		"container-id":   {Type: ContainerID, Stamp: Stamp{Sec: 1700000000, Msec: 123, Serial: 4242}, Fields: []Field{pf("record", "1"), pf("contid", "4,^2")}},
		"container-op": {Type: ContainerOp, Stamp: Stamp{Sec: 1700000000, Msec: 123, Serial: OwnSerialBase}, Fields: []Field{
			pf("op", "set"), pf("opid", "2342"), pf("contid", "4"), pf("old-contid", "-1"), pf("pid", "2300"),
			pf("uid", "0"), pf("auid", "1000"), pf("ses", "3"), ef("comm", "runc", Untrusted),
			ef("exe", "/usr/bin/runc", Untrusted), pf("res", "success"),
		}},
	}
}

const (
	benchSyscall = `type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c2a8e0a0 a1=55d0c2a8e0c8 a2=55d0c2a8e0f0 a3=8 items=2 ppid=2310 pid=2342 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="cat" exe="/usr/bin/cat" subj=unconfined key="exec"`
	benchUser    = "type=USER_START msg=audit(1700000600.400:9199): pid=4990 uid=0 auid=1000 ses=3 subj=unconfined msg='op=PAM:session_open grantors=pam_keyinit,pam_limits,pam_unix acct=\"root\" exe=\"/usr/bin/su\" hostname=? addr=? terminal=pts/0 res=success'\x1dUID=\"root\" AUID=\"alice\""
)
