package procfs

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) comm) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 100 18446744073709551615\n"
	s, err := ParseStat([]byte(line))
	if err != nil || s.PID != 4242 || s.Comm != "a (weird) comm" || s.State != 'S' || s.PPID != 1 || s.StartTime != 123456 || s.Exited() {
		t.Fatalf("got %+v, %v", s, err)
	}
	if s, _ := ParseStat([]byte(strings.Replace(line, ") S ", ") Z ", 1))); !s.Exited() {
		t.Fatal("a zombie has not exited")
	}
	for _, bad := range []string{"", "x (c) S 1", "5 (c) S 1 2", "5 c S 1 2 3", "-5 (c) S 1 4242 4242 0 -1 1 1 0 0 0 0 0 0 0 20 0 1 0 9 9"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	good := "Name:\tbash\nTgid:\t100\nPid:\t101\nPPid:\t1\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t000001ffffffffff\nNSpid:\t101\t7\n"
	s, err := ParseStatus([]byte(good))
	if err != nil || s.TGID != 100 || s.PPID != 1 || !s.Has(CapAuditControl) || s.UID != [4]uint32{1000, 0, 0, 0} || s.GID[3] != 1000 || !slices.Equal(s.NSpid, []int32{101, 7}) {
		t.Fatalf("got %+v, %v", s, err)
	}
	s, _ = ParseStatus([]byte(strings.Replace(good, "000001ffffffffff", "0000000000000000", 1)))
	if s.Has(CapAuditControl) || s.Has(64) {
		t.Fatal("empty CapEff has CAP_AUDIT_CONTROL")
	}
	if s, err := ParseStatus([]byte(strings.Replace(good, "NSpid:\t101\t7\n", "", 1))); err != nil || s.NSpid != nil {
		t.Fatalf("without NSpid (before 4.1): %+v, %v", s, err)
	}
	for _, bad := range []string{
		"",
		"Tgid:\t1\n",
		strings.Replace(good, "100", "x", 1),
		strings.Replace(good, "Tgid:\t100", "Tgid:\t0", 1),
		strings.Replace(good, "000001ffffffffff", "zz", 1),
		strings.Replace(good, "\t1\n", "\t-1\n", 1),
		strings.Replace(good, "\t0\t0\t0\n", "\t0\t0\n", 1),
		strings.Replace(good, "1000\t1000\t1000\t1000", "1000\tx\t1000\t1000", 1),
		strings.Replace(good, "Gid:", "Uid:", 1), // Uid twice, no Gid
		strings.Replace(good, "\t101\t7\n", "\t101\tx\n", 1),
		strings.Replace(good, "\t101\t7\n", "\t0\n", 1),
		strings.Replace(good, "\t101\t7\n", "\n", 1),
	} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestOwnProcess reads this process's real /proc files.
func TestOwnProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStat(b)
	if err != nil || int(s.PID) != os.Getpid() || int(s.PPID) != os.Getppid() || s.StartTime == 0 {
		t.Fatalf("got %+v, %v", s, err)
	}
	b, _ = os.ReadFile("/proc/self/status")
	c, err := ParseStatus(b)
	if err != nil || int(c.TGID) != os.Getpid() || int(c.PPID) != os.Getppid() || int(c.UID[0]) != os.Getuid() || int(c.GID[1]) != os.Getegid() ||
		len(c.NSpid) == 0 || int(c.NSpid[len(c.NSpid)-1]) != os.Getpid() {
		t.Fatalf("got %+v, %v", c, err)
	}
	b, _ = os.ReadFile("/proc/self/auxv")
	if secure, err := ParseAuxv(b); err != nil || secure {
		t.Fatalf("own auxv: secure %v, %v", secure, err)
	}
}

func TestTicks(t *testing.T) {
	if got := TicksFromBoottime(1_234_567_890); got != 123 {
		t.Fatalf("got %d", got)
	}
}

func TestParseID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint32
		ok   bool
	}{{"1000", 1000, true}, {"4294967295", 4294967295, true}, {"7\n", 7, true}, {"", 0, false}, {"-1", 0, false}, {"4294967296", 0, false}} {
		if got, err := ParseID([]byte(tt.in)); (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %d, %v", tt.in, got, err)
		}
	}
}

func TestParseAuxv(t *testing.T) {
	pair := func(k, v uint64) []byte {
		return binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, k), v)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tt := range []struct {
		b      []byte
		secure bool
		ok     bool
	}{
		{cat(pair(6, 4096), pair(23, 1), pair(0, 0)), true, true},
		{cat(pair(23, 0), pair(0, 0)), false, true},
		{cat(pair(6, 4096), pair(0, 0), pair(23, 1)), false, true}, // after AT_NULL: not read
		{cat(pair(23, 1)), false, false},                           // no AT_NULL
		{[]byte{1, 2, 3}, false, false},
	} {
		secure, err := ParseAuxv(tt.b)
		if (err == nil) != tt.ok || secure != tt.secure {
			t.Errorf("%x: secure %v, err %v", tt.b, secure, err)
		}
	}
}

func TestParseFdinfoPid(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\n", 4242, true},
		{"Pid:\t-1\n", -1, true}, // exited
		{"Pid:\t0\n", 0, true},   // not in our pid namespace
		{"pos:\t0\nflags:\t02\n", 0, false},
		{"Pid:\t-2\n", 0, false},
		{"Pid:\tx\n", 0, false},
	} {
		if got, err := ParseFdinfoPid([]byte(tt.in)); (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %d, %v", tt.in, got, err)
		}
	}
}

func TestIsIdentityUIDMap(t *testing.T) {
	for in, want := range map[string]bool{
		"         0          0 4294967295\n": true,
		"         0       1000          1\n": false,
		"0 0 4294967295\n1 1 1\n":            false,
		"":                                   false,
	} {
		if got := IsIdentityUIDMap([]byte(in)); got != want {
			t.Errorf("%q: %v", in, got)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 1 1 1\n"))
	f.Add([]byte("7 ()) ) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 9 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err == nil && (s.PID <= 0 || s.PPID < 0) {
			t.Fatalf("bad pids accepted: %+v", s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Tgid:\t100\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\nNSpid:\t100\t1\n"))
	f.Add([]byte("CapEff:\tffffffffffffffffff\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && (s.TGID <= 0 || s.PPID < 0 || len(s.NSpid) > maxPidNSLevel || slices.ContainsFunc(s.NSpid, func(p int32) bool { return p <= 0 })) {
			t.Fatalf("bad pids accepted: %+v", s)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add([]byte("4294967295\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ParseID(b) })
}

func FuzzParseAuxv(f *testing.F) {
	f.Add([]byte{23, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if secure, err := ParseAuxv(b); err != nil && secure {
			t.Fatal("secure with an error")
		}
	})
}

func FuzzParseFdinfoPid(f *testing.F) {
	f.Add([]byte("pos:\t0\nPid:\t4242\nNSpid:\t4242\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := ParseFdinfoPid(b); err == nil && v < -1 {
			t.Fatalf("pid %d accepted", v)
		}
	})
}

func FuzzIsIdentityUIDMap(f *testing.F) {
	f.Add([]byte("0 0 4294967295\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if IsIdentityUIDMap(b) && !bytes.Contains(b, []byte("4294967295")) {
			t.Fatalf("%q taken for the identity map", b)
		}
	})
}
