package procfs

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestPidNSTranslation: the kernel's translation (6.11+) and the NSpid
// fallback agree for the tasks of a pid namespace, and both refuse a task
// outside it (this test process).
func TestPidNSTranslation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root (CI does): it creates a pid namespace")
	}
	// The namespace's init prints its child's pid as it sees it, then waits.
	cmd := exec.Command("unshare", "--fork", "--pid", "sh", "-c", "sleep 60 & echo $!; wait")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	inner, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("inner pid %q", buf[:n])
	}
	// The host pids of the namespace's init and its child.
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + strconv.Itoa(cmd.Process.Pid) + "/children")
	init, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	b, _ = os.ReadFile("/proc/" + strconv.Itoa(init) + "/task/" + strconv.Itoa(init) + "/children")
	child, _ := strconv.Atoi(strings.Fields(string(b))[0])
	for _, fallback := range []bool{false, true} {
		ns, err := Host.OpenPidNS(int32(init))
		if err != nil {
			t.Fatal(err)
		}
		if fallback {
			ns.Fallback()
		}
		if got, err := ns.In(int32(child)); err != nil || got != int32(inner) {
			t.Errorf("fallback %v: In(%d) = %d, %v; want %d", fallback, child, got, err, inner)
		}
		if got, err := ns.In(int32(init)); err != nil || got != 1 {
			t.Errorf("fallback %v: In(init %d) = %d, %v; want 1", fallback, init, got, err)
		}
		if got, err := ns.In(int32(os.Getpid())); err == nil {
			t.Errorf("fallback %v: this process is %d in the namespace", fallback, got)
		}
		cands := func() []int32 { return []int32{int32(os.Getpid()), int32(init), int32(child)} }
		if got, err := ns.From(int32(inner), cands); err != nil || got != int32(child) {
			t.Errorf("fallback %v: From(%d) = %d, %v; want %d", fallback, inner, got, err, child)
		}
		ns.Close()
	}
}
