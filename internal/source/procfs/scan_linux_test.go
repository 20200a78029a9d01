package procfs

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestScanSeesThisProcess(t *testing.T) {
	seeds, st, err := Host.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks < 3 {
		t.Fatalf("scan found %d tasks", st.Tasks)
	}
	me := int32(os.Getpid())
	var found, threads bool
	for i, s := range seeds {
		if i > 0 && s.Start < seeds[i-1].Start {
			t.Fatal("seeds not sorted by start time")
		}
		if s.PID == me {
			found = true
			if s.PPID != int32(os.Getppid()) || s.TGID != me || !strings.HasSuffix(s.Exe, ".test") {
				t.Fatalf("own seed %+v", s)
			}
			var want syscall.Stat_t
			syscall.Stat("/proc/self/ns/net", &want)
			if got := s.NS[3]; uint64(got.Ino) != want.Ino || uint64(got.Dev) != want.Dev {
				t.Fatalf("net ns %s, want %d:%d", got, want.Dev, want.Ino)
			}
		}
		if s.TGID == me && s.PID != me {
			threads = true // the Go runtime always has more threads
		}
	}
	if !found || !threads {
		t.Fatalf("own process found=%v threads=%v", found, threads)
	}
}

func TestReadNSIDMatchesStat(t *testing.T) {
	out, err := exec.Command("stat", "-L", "-c", "%d:%i", "/proc/self/ns/mnt").Output()
	if err != nil {
		t.Fatal(err)
	}
	id, err := ReadNSID("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	// stat ran in a child, which shares our mount namespace.
	if got := fmt.Sprintf("%d:%d", id.Dev, id.Ino); got != strings.TrimSpace(string(out)) {
		t.Fatalf("ReadNSID %s, stat says %s", got, out)
	}
	if id.Unique == 0 {
		t.Fatal("NS_GET_ID gave no unique id on a 6.18 kernel")
	}
}
