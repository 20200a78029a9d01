// Package fdinfo tells tests how a process holds a file open, from
// /proc/PID/fd and /proc/PID/fdinfo. It is for tests only: a failure to
// read /proc fails the test.
package fdinfo

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// Flags returns the open flags (O_DSYNC, O_APPEND, …) of process pid's
// descriptor of path; pid is a number or "self". When the process holds
// no descriptor of path, ok is false and targets lists what its
// descriptors name, a mark of progress for a caller that waits for one.
func Flags(t testing.TB, pid, path string) (flags int, targets []string, ok bool) {
	t.Helper()
	dir := "/proc/" + pid
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(dir + "/fd/" + fd.Name())
		targets = append(targets, target)
		if target != path {
			continue
		}
		b, err := os.ReadFile(dir + "/fdinfo/" + fd.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("fdinfo of %s in %s: flags %q: %v", path, dir, v, err)
				}
				return int(n), nil, true
			}
		}
		t.Fatalf("fdinfo of %s in %s has no flags line:\n%s", path, dir, b)
	}
	return 0, targets, false
}
