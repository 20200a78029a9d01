package rules

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	s, err := Parse(strings.NewReader(src), "test.rules")
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return s
}

// syscallView is an x86_64 SYSCALL event of pid 100, uid 0, auid 1000.
func syscallView(chains ...contid.Chain) View {
	return View{
		Types:  []records.Type{records.Syscall, records.ContainerID, 1302, records.EOE},
		Chains: chains,
		Keys:   "exec\x01watch",
		PID:    100, UID: 0, AUID: 1000, Syscall: 59, Arch: auditArchX86_64, Exe: "/usr/bin/cat",
		Has: HasPID | HasUID | HasAUID | HasSyscall | HasArch | HasExe,
	}
}

func TestDecide(t *testing.T) {
	nested := contid.Chain{9, 7, 1}
	tests := []struct {
		name  string
		rule  string
		view  View
		match bool
	}{
		{"no condition", "-a drop", View{}, true},
		{"contid innermost", "-a drop -F contid=9", syscallView(nested), true},
		{"contid parent selects nested", "-a drop -F contid=1", syscallView(nested), true},
		{"contid any chain", "-a drop -F contid=5", syscallView(contid.Chain{4}, contid.Chain{5, 2}), true},
		{"contid other", "-a drop -F contid=8", syscallView(nested), false},
		{"contid 0 is an id", "-a drop -F contid=0", syscallView(contid.Chain{0}), true},
		{"contid!= no element", "-a drop -F contid!=8", syscallView(nested), true},
		{"contid!= some element", "-a drop -F contid!=7", syscallView(nested), false},
		{"contid!= without chains", "-a drop -F contid!=7", syscallView(), true},
		{"contid=none without chains", "-a drop -F contid=none", syscallView(), true},
		{"contid=none with empty chains", "-a drop -F contid=none", syscallView(nil, contid.Chain{}), true},
		{"contid=none with a chain", "-a drop -F contid=none", syscallView(nested), false},
		{"contid!=none with a chain", "-a drop -F contid!=none", syscallView(nested), true},
		{"type by name", "-a drop -F type=PATH", syscallView(), true},
		{"type by number", "-a drop -F type=1302", syscallView(), true},
		{"type contid's", "-a drop -F type=CONTAINER_ID", syscallView(), true},
		{"type UNKNOWN[n]", "-a drop -F type=UNKNOWN[2901]", syscallView(), true},
		{"type absent", "-a drop -F type=AVC", syscallView(), false},
		{"type!= absent", "-a drop -F type!=AVC", syscallView(), true},
		{"type!= present", "-a drop -F type!=EOE", syscallView(), false},
		{"key first", "-a drop -F key=exec", syscallView(), true},
		{"key second", "-a drop -F key=watch", syscallView(), true},
		{"key prefix is no key", "-a drop -F key=exe", syscallView(), false},
		{"key!=", "-a drop -F key!=shadow", syscallView(), true},
		{"key!= present", "-a drop -F key!=watch", syscallView(), false},
		{"key!= without keys", "-a drop -F key!=x", View{}, true},
		{"key= without keys", "-a drop -F key=x", View{}, false},
		{"pid=", "-a drop -F pid=100", syscallView(), true},
		{"pid<", "-a drop -F pid<100", syscallView(), false},
		{"pid<=", "-a drop -F pid<=100", syscallView(), true},
		{"pid>", "-a drop -F pid>99", syscallView(), true},
		{"uid>=", "-a drop -F uid>=1000", syscallView(), false},
		{"auid>=", "-a drop -F auid>=1000", syscallView(), true},
		{"auid!=unset", "-a drop -F auid!=unset", syscallView(), true},
		{"auid=-1", "-a drop -F auid=-1", View{AUID: 4294967295, Has: HasAUID}, true},
		{"absent pid never matches =", "-a drop -F pid=100", View{}, false},
		{"absent pid never matches !=", "-a drop -F pid!=100", View{}, false},
		{"absent exe never matches !=", "-a drop -F exe!=/x", View{}, false},
		{"syscall by name", "-a drop -F syscall=execve", syscallView(), true},
		{"syscall by number", "-a drop -F syscall=59", syscallView(), true},
		{"syscall!= by name", "-a drop -F syscall!=openat", syscallView(), true},
		{"syscall name, other arch", "-a drop -F syscall=execve", View{Syscall: 59, Arch: 0x40000003, Has: HasSyscall | HasArch}, false},
		{"syscall name!=, other arch", "-a drop -F syscall!=open", View{Syscall: 59, Arch: 0x40000003, Has: HasSyscall | HasArch}, false},
		{"syscall number, other arch", "-a drop -F syscall=59", View{Syscall: 59, Arch: 0x40000003, Has: HasSyscall | HasArch}, true},
		{"exe", "-a drop -F exe=/usr/bin/cat", syscallView(), true},
		{"exe quoted with space", `-a drop -F exe="/opt/my app/x"`, View{Exe: "/opt/my app/x", Has: HasExe}, true},
		{"exe!=", "-a drop -F exe!=/usr/bin/cat", syscallView(), false},
		{"all conditions must hold", "-a drop -F contid=1 -F key=nokey", syscallView(nested), false},
		{"-F glued", "-a drop -Fcontid=1 -Fkey=exec", syscallView(nested), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set := mustParse(t, tc.rule)
			d := set.Decide(tc.view)
			if got := d.Rule == 0; got != tc.match {
				t.Errorf("%s: matched %v, want %v", tc.rule, got, tc.match)
			}
			if tc.match != d.Drop {
				t.Errorf("Drop = %v", d.Drop)
			}
		})
	}
}

func TestDecideOrderAndRoutes(t *testing.T) {
	set := mustParse(t, `
# first match wins
-a keep,stream=a,container -F contid=7   # trailing comment
-a drop -F contid=7
-a keep -F key=exec
`)
	d := set.Decide(syscallView(contid.Chain{7}))
	if d.Drop || d.Rule != 0 || d.Routes.Dest != Container || len(d.Routes.Streams) != 1 || d.Routes.Streams[0] != "a" {
		t.Errorf("decision %+v", d)
	}
	if set.Line(0) != 3 {
		t.Errorf("Line(0) = %d", set.Line(0))
	}
	d = set.Decide(syscallView())
	if d.Drop || d.Rule != 2 || d.Routes.Dest != Host|Container || len(d.Routes.Streams) != 0 {
		t.Errorf("keep without routes: %+v", d)
	}
	d = set.Decide(View{})
	if d.Drop || d.Rule != -1 || d.Routes.Dest != Host|Container {
		t.Errorf("default: %+v", d)
	}
	if got := mustParse(t, "").Decide(View{}); got.Rule != -1 || got.Drop || !got.Routes.Has(Host) || !got.Routes.Has(Container) {
		t.Errorf("empty set: %+v", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string // first error
	}{
		{"-a keep -F contid=x", "test.rules:1:19: contid: \"x\" is neither a decimal contid nor none"},
		{"-a keep -F contid=18446744073709551616", "test.rules:1:19: contid: \"18446744073709551616\" is beyond the 64-bit range"},
		{"\n\n  -a keep -F pid=99999999999", "test.rules:3:18: pid: \"99999999999\" is not a decimal number below 2^32"},
		{"-a keep -F exe", "test.rules:1:15: field exe needs an operator: = or !="},
		{"-a keep -F pid~1", "test.rules:1:15: field pid needs an operator: = or !=, <, >, <=, >="},
		{"-a keep -F key>x", "test.rules:1:15: field key takes only = and != (> is for pid, uid and auid)"},
		{`-a keep -F key"=x"`, "test.rules:1:15: only a whole value may be quoted"},
		{`-a keep -F "key=x"`, "test.rules:1:12: only a whole value may be quoted"},
		{`-a keep -F exe=""`, "test.rules:1:16: field exe needs a value"},
		{"-a keep -F exe=/a\x02b", "test.rules:1:18: control byte 0x02"},
		{"-a keep,stream=", "test.rules:1:16: stream name \"\": empty"},
		{"-a keep,", "test.rules:1:9: empty route"},
		{`-a "keep"`, "test.rules:1:4: the action is not quoted"},
		{"-a keep -F key=" + strings.Repeat("k", MaxValueLen+1), "test.rules:1:16: key: value longer than 1024 bytes"},
		{strings.Repeat("x", MaxLineLen+1), "test.rules:1:1: line longer than 4096 bytes"},
	}
	for _, tc := range tests {
		set, err := Parse(strings.NewReader(tc.src), "test.rules")
		if set != nil || err == nil {
			t.Errorf("Parse(%q) succeeded", excerpt(tc.src))
			continue
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Errorf("Parse(%q): %v is no ErrorList", excerpt(tc.src), err)
			continue
		}
		if got := list[0].Error(); got != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", excerpt(tc.src), got, tc.want)
		}
	}
}

func TestParseManyErrorsStops(t *testing.T) {
	src := strings.Repeat("-a maybe\n", 100)
	_, err := Parse(strings.NewReader(src), "x")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors {
		t.Fatalf("got %d errors, want %d", len(list), maxErrors)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failReader{}, "r")
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrInvalid) {
		t.Errorf("read error: %v", err)
	}
}

func TestParseAccepts(t *testing.T) {
	src := "-a keep,container,host\r\n" +
		"\t-a   keep \t -F exe=/a#b   # # comment\n" +
		`-a keep -F exe="/with \"quote\" and \\ and space"` + "\n" +
		"-a keep -F uid=unset -F auid=-1 -F syscall=0 -F type=1300\n"
	set := mustParse(t, src)
	want := "-a keep,host,container\n" +
		`-a keep,host,container -F exe=/a#b` + "\n" +
		`-a keep,host,container -F exe="/with \"quote\" and \\ and space"` + "\n" +
		"-a keep,host,container -F uid=unset -F auid=unset -F syscall=0 -F type=SYSCALL\n"
	if got := set.String(); got != want {
		t.Errorf("String:\n%s\nwant\n%s", got, want)
	}
	if v := (View{Exe: `/with "quote" and \ and space`, Has: HasExe}); set.Decide(v).Rule != 0 {
		// rule 0 has no condition, so check rule 2 alone
		if mustParse(t, strings.Split(src, "\n")[2]).Decide(v).Rule != 0 {
			t.Error("quoted exe does not match")
		}
	}
}

func TestFill(t *testing.T) {
	lines := []string{
		`type=AVC msg=audit(1700000000.000:1): avc:  denied  { read } for  pid=9 comm="x" scontext=a tcontext=b tclass=file permissive=0`,
		`type=SYSCALL msg=audit(1700000000.000:1): arch=c000003e syscall=0 success=no exit=-13 a0=3 a1=0 a2=0 a3=0 items=0 ppid=1 pid=42 auid=4294967295 uid=7 gid=7 euid=7 suid=7 fsuid=7 egid=7 sgid=7 fsgid=7 tty=(none) ses=4294967295 comm="x" exe=(null) subj=u key=(null)`,
		`type=UNKNOWN[2901] msg=audit(1700000000.000:1): pid=42 uid=7 auid=4294967295 ses=4294967295 record=2 contid=3`,
		`type=CONFIG_CHANGE msg=audit(1700000000.000:1): auid=1 ses=1 op=add_rule key="late" list=4 res=1`,
	}
	var recs []records.Record
	for _, l := range lines {
		r, err := records.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	var v View
	v.Fill(recs, []contid.Chain{{3}})
	if v.PID != 42 || v.UID != 7 || v.AUID != 4294967295 || v.Syscall != 0 || v.Arch != auditArchX86_64 ||
		v.Has != HasPID|HasUID|HasAUID|HasSyscall|HasArch || v.Keys != "late" || len(v.Types) != 4 || len(v.Chains) != 1 {
		t.Errorf("Fill: %+v", v)
	}
	// A user record is its own subject; a CONTAINER_ID never is.
	u, _ := records.ParseLine(`type=USER_CMD msg=audit(1.000:2): pid=5 uid=1000 auid=1000 ses=3 subj=u msg='cwd="/" cmd=6C73 exe="/usr/bin/sudo" terminal=pts/0 res=success'`)
	c, _ := records.ParseLine(`type=UNKNOWN[2901] msg=audit(1.000:2): pid=5 uid=1000 auid=1000 ses=3 record=1 contid=4`)
	v.Fill([]records.Record{c, u}, nil)
	if v.PID != 5 || v.Exe != "/usr/bin/sudo" || v.Has&HasSyscall != 0 || v.Keys != "" {
		t.Errorf("Fill user: %+v", v)
	}
	if n := testing.AllocsPerRun(100, func() { v.Fill(recs, nil) }); n != 0 {
		t.Errorf("Fill allocates %v times", n)
	}
}

func TestStreams(t *testing.T) {
	set := mustParse(t, "-a keep,stream=b,stream=a\n-a keep,stream=a,stream=c -F pid=1\n-a drop")
	if got := strings.Join(set.Streams(), ","); got != "a,b,c" {
		t.Errorf("Streams = %s", got)
	}
}

func TestHasKey(t *testing.T) {
	tests := []struct {
		keys, k string
		want    bool
	}{
		{"a", "a", true}, {"ab", "a", false}, {"a\x01b", "b", true}, {"a\x01b", "a", true},
		{"ab\x01c", "abc", false}, {"x\x01longkey", "longkey", true}, {"", "a", false},
		{"a\x01\x01b", "b", true}, {"abc", "abcd", false},
	}
	for _, tc := range tests {
		if got := hasKey(tc.keys, tc.k); got != tc.want {
			t.Errorf("hasKey(%q, %q) = %v", tc.keys, tc.k, got)
		}
	}
}
