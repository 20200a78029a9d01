package auditrules

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kballard/go-shellquote"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/auditnl"
)

func TestParseAccepts(t *testing.T) {
	for _, line := range []string{
		"-a always,exit -F arch=b64 -S execve -k exec",
		"-A exit,always -F arch=b64 -S kill,tkill -F auid>=1000 -F auid!=unset",
		"-w /etc/passwd -p wa -k pw",
		"-w /etc/ssh -p rwxa",
		"-a always,exit -F arch=b64 -S openat -F exit=-EACCES -k 'denied open'",
		"-a always,exit -F arch=b32 -S open -C uid!=euid",
		"-a always,task -F uid=0",
		// Exclude and user rules that keep off 2900–2907.
		"-a never,exclude -F msgtype=1300",
		"-a always,exclude -F msgtype>=1100 -F msgtype<=1199",
		"-a never,exclude -F msgtype<2900",
		"-a never,exclude -F msgtype>2907",
		"-a never,exclude -F msgtype>=2908 -F uid=0",
		"-a never,user -F msgtype=1100",
		"-a always,user -F uid=0",
	} {
		rs, err := Parse(strings.NewReader(line+"\n"), "r")
		if err != nil || len(rs) != 1 {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if rs[0].Line != 1 || rs[0].Text != line {
			t.Errorf("%q: %+v", line, rs[0])
		}
	}
}

func TestParseFile(t *testing.T) {
	rs, err := Parse(strings.NewReader("# rules\n\n-a always,exit -F arch=b64 -S execve -k x\n  -w /etc/passwd -p wa -k pw\n"), "r")
	if err != nil || len(rs) != 2 {
		t.Fatalf("%d rules, %v", len(rs), err)
	}
	if rs[0].Line != 3 || rs[1].Line != 4 || rs[1].Text != "-w /etc/passwd -p wa -k pw" {
		t.Errorf("lines: %+v %+v", rs[0].Line, rs[1])
	}
	x := rs[0].Kernel
	if x.List() != unix.AUDIT_FILTER_EXIT || x.Action != unix.AUDIT_ALWAYS || x.Mask[unix.SYS_EXECVE/32] != 1<<(unix.SYS_EXECVE%32) ||
		!reflect.DeepEqual(x.Strings(), []string{"x"}) {
		t.Errorf("execve rule encoded as %+v", x)
	}
	if w := rs[1].Kernel; !reflect.DeepEqual(w.Strings(), []string{"/etc/passwd", "pw"}) || w.Fields[0].Field != unix.AUDIT_WATCH {
		t.Errorf("watch encoded as %+v", w)
	}
}

// TestParseRefuses: every line here is refused, with the place named,
// and the file it is in loads nothing.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ line, why string }{
		// Global state, anywhere on the line.
		{"-e 2", "-e is refused"},
		{"-e 0", "-e is refused"},
		{"-w /etc/passwd -p wa -e 0", "-e is refused"},
		{"-a always,exit -S execve -k x -e 2", "-e is refused"},
		{"-a always,exit -S execve extra -e 2", `"extra" is not an option`},
		{"-a always,exit -S execve -- -e 2", "-- is refused"},
		{"-D", "-D is refused"},
		{"-D -k x", "-D is refused"},
		{"-b 8192", "-b is refused"},
		{"-f 2", "-f is refused"},
		{"-r 10", "-r is refused"},
		{"--backlog_wait_time 0", "--backlog_wait_time is refused"},
		{"--reset-lost", "--reset-lost is refused"},
		{"--loginuid-immutable", "--loginuid-immutable is refused"},
		{"-R /etc/audit/audit.rules", "-R is refused"},
		{"-d always,exit -S execve", "-d is refused"},
		{"-W /etc/passwd", "-W is refused"},
		{"-s", "-s is refused"},
		{"-a=always,exit -S execve", "-a=always,exit is refused"},
		// contid's own records.
		{"-A always,exclude -F msgtype=2900", "could drop contid's own records (type 2900"},
		{"-a never,exclude -F msgtype=2907", "type 2907"},
		{"-a never,exclude -F msgtype>=2000", "could drop contid's own"},
		{"-a never,exclude -F msgtype>=2900 -F msgtype<=2999", "could drop contid's own"},
		{"-a never,exclude -F msgtype!=1300", "could drop contid's own"},
		{"-a never,exclude -F msgtype&2048", "could drop contid's own"},
		{"-a always,exclude -F uid=0", "an exclude rule that could drop"},
		{"-a never,exclude -F exe=/usr/sbin/contid", "an exclude rule that could drop"},
		{"-a never,user -F uid=0", "a never rule of the user list"},
		{"-a never,user -F msgtype=2905", "type 2905"},
		// Not rules.
		{"-a", "-a needs an argument"},
		{"-k x", "not a rule"},
		{"-a always,exit -S execve -a always,exit -S kill", "a second -a"},
		{"-w /etc/passwd -a always,exit", "a second -a"},
		{"-w /etc/passwd -p wa -p r", "a second -p"},
		{"-a always,exit -S x\x01", "control character"},
		{"-a always,exit -S nosuchsyscall", "nosuchsyscall"},
		{"-a always,entry -S execve", "entry"},
		{"-a always,exit -S execve -k 'unterminated", "Unterminated"},
		{"-w relative/path", "absolute"},
	} {
		rs, err := Parse(strings.NewReader("-a always,exit -F arch=b64 -S execve -k ok\n"+c.line+"\n"), "audit.rules")
		if err == nil || rs != nil {
			t.Errorf("%q: accepted", c.line)
			continue
		}
		if !strings.Contains(err.Error(), "audit.rules:2: ") || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%q: error %q, want the place and %q", c.line, err, c.why)
		}
	}
	_, err := Parse(strings.NewReader("-a always,exit -S execve -k a\n#\n-a exit,always -S execve -k a\n"), "r")
	if err == nil || !strings.Contains(err.Error(), "r:3: the same rule as line 1") {
		t.Errorf("duplicate: %v", err)
	}
	_, err = Parse(strings.NewReader(strings.Repeat("-a always,exit -S execve\n", 1)+strings.Repeat("x", 70000)+"\n"), "r")
	if err == nil {
		t.Error("a 70000-byte line accepted")
	}
}

// FuzzParse: no line makes Parse panic, and every rule it accepts keeps
// off contid's own record types and encodes to a rule the kernel's
// decoder reads back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-a always,exit -F arch=b64 -S execve -k exec",
		"-w /etc/passwd -p wa -e 0",
		"-A always,exclude -F msgtype=2900",
		"-a never,exclude -F msgtype>=2908 -F uid=0",
		"-a never,user -F msgtype=1100",
		"-a always,exit -S open -C uid!=euid -k 'a b'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := Parse(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		for _, r := range rs {
			if err := check(r.Kernel); err != nil {
				t.Fatalf("%q accepted: %v", r.Text, err)
			}
			back, err := auditnl.ParseRule(r.Kernel.Marshal())
			if err != nil || !back.Equal(r.Kernel) {
				t.Fatalf("%q: encoding does not decode: %v", r.Text, err)
			}
			args, _ := shellquote.Split(r.Text)
			for i := 0; i < len(args); i += 2 {
				if !slices.Contains(ruleOptions, args[i]) {
					t.Fatalf("%q accepted with option %s", r.Text, args[i])
				}
			}
		}
	})
}
