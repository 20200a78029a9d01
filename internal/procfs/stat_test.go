package procfs

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) comm) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 100 18446744073709551615\n"
	s, err := ParseStat([]byte(line))
	if err != nil || s.PID != 4242 || s.Comm != "a (weird) comm" || s.State != 'S' || s.PPID != 1 || s.StartTime != 123456 {
		t.Fatalf("got %+v, %v", s, err)
	}
	for _, bad := range []string{"", "x (c) S 1", "5 (c) S 1 2", "5 c S 1 2 3", "-5 (c) S 1 4242 4242 0 -1 1 1 0 0 0 0 0 0 0 20 0 1 0 9 9"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

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
	if err != nil || int(c.TGID) != os.Getpid() || int(c.UID) != os.Getuid() {
		t.Fatalf("got %+v, %v", c, err)
	}
}

func TestTicks(t *testing.T) {
	if got := TicksFromBoottime(1_234_567_890); got != 123 {
		t.Fatalf("got %d", got)
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
	f.Add([]byte("Name:\tsh\nTgid:\t5\nUid:\t0\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseStatus(b)
		if err == nil && c.TGID <= 0 {
			t.Fatalf("bad tgid accepted: %+v", c)
		}
	})
}
