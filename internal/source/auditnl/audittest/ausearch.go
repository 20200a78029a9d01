package audittest

import (
	"os"
	"os/exec"
	"testing"
)

// Ausearch returns the path of ausearch (Debian's auditd package), for
// tests that check contid's logs against the real tool. A missing ausearch
// fails the test where it is required, in CI (CI set) and as root, which
// is how CI runs; elsewhere it skips the test.
func Ausearch(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("ausearch")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" || os.Geteuid() == 0 {
		t.Fatalf("ausearch is required here (CI or root) and missing: %v (apt-get install auditd)", err)
	}
	t.Skipf("ausearch not installed: %v", err)
	return ""
}
