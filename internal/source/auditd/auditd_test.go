package auditd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func tcpLine(ino string) string {
	return "   0: 0100007F:0B54 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 " + ino + " 1 0000000000000000 100 0 0 10 0\n"
}

// fakeProc builds /proc/42 with exe, fd links and net/tcp{,6}.
func fakeProc(t *testing.T, exe string, fds []string, tcp, tcp6 string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, "42")
	for _, d := range []string{"fd", "net"} {
		if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(exe, filepath.Join(p, "exe")); err != nil {
		t.Fatal(err)
	}
	for i, l := range fds {
		if err := os.Symlink(l, filepath.Join(p, "fd", string(rune('3'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(p, "net", "tcp"), []byte(tcpHeader+tcp), 0o644)
	os.WriteFile(filepath.Join(p, "net", "tcp6"), []byte(tcpHeader+tcp6), 0o644)
	return root
}

func TestLocalOnly(t *testing.T) {
	for _, c := range []struct {
		name       string
		exe        string
		fds        []string
		tcp, tcp6  string
		local      bool
		notAuditd  bool
		wantErrSub string
	}{
		{name: "no sockets", exe: "/usr/sbin/auditd", fds: []string{"/var/log/audit/audit.log", "pipe:[7]"}, local: true},
		{name: "netlink and unix only", exe: "/usr/sbin/auditd", fds: []string{"socket:[100]", "socket:[101]"}, tcp: tcpLine("200"), local: true},
		{name: "tcp listener", exe: "/usr/sbin/auditd", fds: []string{"socket:[100]", "socket:[200]"}, tcp: tcpLine("200"), local: false},
		{name: "tcp6 connection", exe: "/usr/sbin/auditd", fds: []string{"socket:[300]"}, tcp6: tcpLine("300"), local: false},
		{name: "binary replaced on disk", exe: "/usr/sbin/auditd (deleted)", fds: []string{"socket:[100]"}, local: true},
		{name: "not auditd", exe: "/bin/sh", notAuditd: true},
		{name: "bad table", exe: "/usr/sbin/auditd", fds: []string{"socket:[100]"}, tcp: "short line\n", wantErrSub: "fields"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := newProber(fakeProc(t, c.exe, c.fds, c.tcp, c.tcp6), 42)
			if c.notAuditd {
				if !errors.Is(err, ErrNotAuditd) {
					t.Fatalf("err %v, want ErrNotAuditd", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			local, err := p.LocalOnly()
			if c.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
					t.Fatalf("err %v, want %q", err, c.wantErrSub)
				}
				return
			}
			if err != nil || local != c.local {
				t.Fatalf("LocalOnly = %v, %v; want %v", local, err, c.local)
			}
		})
	}
}

// TestLocalOnlyLive: this process, as the kernel shows it, before, while
// and after it listens on TCP (tcp6 tables are covered by TestLocalOnly).
func TestLocalOnlyLive(t *testing.T) {
	p := &Prober{proc: "/proc", pid: os.Getpid(), tcp: map[uint64]bool{}}
	check := func(want bool, when string) {
		t.Helper()
		local, err := p.LocalOnly()
		if err != nil || local != want {
			t.Fatalf("%s: LocalOnly = %v, %v; want %v", when, local, err, want)
		}
	}
	check(true, "before listening")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	check(false, "listening on IPv4")
	l.Close()
	check(true, "after closing")
}

func FuzzParseInodes(f *testing.F) {
	f.Add(tcpHeader + tcpLine("200"))
	f.Add("h\n1 2 3 4 5 6 7 8 9 x\n")
	f.Fuzz(func(t *testing.T, s string) {
		m := map[uint64]bool{}
		if err := parseInodes(strings.NewReader(s), m); err == nil {
			for ino := range m {
				if ino == 0 {
					t.Fatal("inode 0 kept")
				}
			}
		}
	})
}
