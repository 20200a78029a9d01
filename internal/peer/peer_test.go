package peer

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	good := "Name:\tbash\nTgid:\t100\nPid:\t101\nPPid:\t1\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t000001ffffffffff\n"
	s, err := ParseStatus([]byte(good))
	if err != nil || s.TGID != 100 || s.PPID != 1 || !s.Has(CapAuditControl) || s.UID != [4]uint32{1000, 0, 0, 0} || s.GID[3] != 1000 {
		t.Fatalf("got %+v, %v", s, err)
	}
	s, _ = ParseStatus([]byte(strings.Replace(good, "000001ffffffffff", "0000000000000000", 1)))
	if s.Has(CapAuditControl) {
		t.Fatal("empty CapEff has CAP_AUDIT_CONTROL")
	}
	for _, bad := range []string{"", "Tgid:\t1\n", strings.Replace(good, "100", "x", 1), strings.Replace(good, "000001ffffffffff", "zz", 1), strings.Replace(good, "\t1\n", "\t-1\n", 1), strings.Replace(good, "\t0\t0\t0\n", "\t0\t0\n", 1), strings.Replace(good, "1000\t1000\t1000\t1000", "1000\tx\t1000\t1000", 1)} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestOwnStatus(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStatus(b)
	if err != nil || int(s.TGID) != os.Getpid() || int(s.PPID) != os.Getppid() {
		t.Fatalf("got %+v, %v", s, err)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Tgid:\t100\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n"))
	f.Add([]byte("CapEff:\tffffffffffffffffff\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && (s.TGID < 0 || s.PPID < 0) {
			t.Fatalf("negative pid accepted: %+v", s)
		}
	})
}

func TestParseNSpid(t *testing.T) {
	got, err := ParseNSpid([]byte("Name:\tsh\nNSpid:\t4242\t7\t1\nPPid:\t1\n"))
	if err != nil || len(got) != 3 || got[0] != 4242 || got[2] != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "NSpid:\n", "NSpid:\t1\tx\n", "NSpid:\t0\n"} {
		if _, err := ParseNSpid([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
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
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		t.Fatal(err)
	}
	if secure, err := ParseAuxv(b); err != nil || secure {
		t.Fatalf("own auxv: secure %v, %v", secure, err)
	}
}

func FuzzParseAuxv(f *testing.F) {
	f.Add([]byte{23, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { ParseAuxv(b) })
}

// TestPrivileged: a capability counts only while the caller's effective
// ids are those it connected with, and not for an image that gained
// privileges at exec unless it connected as root.
func TestPrivileged(t *testing.T) {
	all := uint64(1)<<CapAuditControl | 1<<CapSysPtrace
	st := func(uid, euid uint32, caps uint64) Status {
		return Status{UID: [4]uint32{uid, euid, euid, euid}, GID: [4]uint32{uid, euid, euid, euid}, CapEff: caps}
	}
	for _, tt := range []struct {
		name   string
		conn   Creds
		now    Status
		secure bool
		want   bool
	}{
		{"root", Creds{0, 0}, st(0, 0, all), false, true},
		{"root without the capability", Creds{0, 0}, st(0, 0, 0), false, false},
		{"ambient capabilities, not root", Creds{1000, 1000}, st(1000, 1000, all), false, true},
		{"connected as a user, then setuid-root exec (su)", Creds{65534, 65534}, st(65534, 0, all), true, false},
		{"setuid-root program that connected itself", Creds{0, 0}, st(65534, 0, all), true, true},
		{"connected as a user, then a file-capability exec", Creds{65534, 65534}, st(65534, 65534, all), true, false},
		{"connected as root, then setuid to a user keeping capabilities", Creds{0, 0}, st(65534, 65534, all), false, false},
		{"setgid exec after connect", Creds{1000, 1000}, Status{UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 42, 42, 42}, CapEff: all}, false, false},
	} {
		if got := Privileged(tt.conn, tt.now, tt.secure, CapAuditControl); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
