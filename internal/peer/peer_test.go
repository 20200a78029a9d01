package peer

import (
	"os"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	good := "Name:\tbash\nTgid:\t100\nPid:\t101\nPPid:\t1\nCapEff:\t000001ffffffffff\n"
	s, err := ParseStatus([]byte(good))
	if err != nil || s.TGID != 100 || s.PPID != 1 || !s.Has(CapAuditControl) {
		t.Fatalf("got %+v, %v", s, err)
	}
	s, _ = ParseStatus([]byte(strings.Replace(good, "000001ffffffffff", "0000000000000000", 1)))
	if s.Has(CapAuditControl) {
		t.Fatal("empty CapEff has CAP_AUDIT_CONTROL")
	}
	for _, bad := range []string{"", "Tgid:\t1\n", strings.Replace(good, "100", "x", 1), strings.Replace(good, "000001ffffffffff", "zz", 1), strings.Replace(good, "\t1\n", "\t-1\n", 1)} {
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
	f.Add([]byte("Tgid:\t100\nPPid:\t1\nCapEff:\t000001ffffffffff\n"))
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
