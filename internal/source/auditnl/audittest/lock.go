// Package audittest serialises the tests that touch the kernel's audit
// state, which is global to the machine, and puts that state back after
// them.
//
// Every test, in any package, that changes kernel audit (enables it, adds
// rules, registers a daemon, sends records) calls Lock first and, if it
// changes settings or rules, Restore:
//
//	audittest.Lock(t)
//	audittest.Restore(t)
//
// Lock takes an exclusive flock on LockPath for the rest of the test, so
// tests of different packages (which go test runs in parallel processes)
// take turns. Restore records `auditctl -s` and `auditctl -l` and puts
// them back at cleanup. Both need root; the auditctl they run comes from
// Debian's auditd package, as does the ausearch that Ausearch finds for
// tests that read contid's logs with it.
package audittest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the lock file every audit-touching test locks.
const LockPath = "/run/contid-audit-test.lock"

// Lock blocks until the test holds the exclusive lock on LockPath. The lock
// is released by a cleanup, which runs after the cleanups registered later
// (Restore's, the test's own), so the state is put back before the next
// test gets the lock.
func Lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatalf("audittest: open lock: %v", err)
	}
	start := time.Now()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		t.Fatalf("audittest: flock %s: %v", LockPath, err)
	}
	// Waiting for other tests' turns is no part of this test's time.
	if waited := time.Since(start); waited > time.Second {
		t.Logf("audittest: waited %v for %s", waited.Round(time.Millisecond), LockPath)
	}
	t.Cleanup(func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	})
}

// State is the part of `auditctl -s` that Restore puts back.
type State struct {
	Enabled         int
	PID             int
	BacklogLimit    int
	BacklogWaitTime int
	Lost            int
}

// Status runs `auditctl -s` and parses it.
func Status(t testing.TB) State {
	t.Helper()
	out := auditctl(t, "-s")
	var s State
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.Fields(v)[0])
		if err != nil {
			continue
		}
		switch k {
		case "enabled":
			s.Enabled = n
		case "pid":
			s.PID = n
		case "backlog_limit":
			s.BacklogLimit = n
		case "backlog_wait_time":
			s.BacklogWaitTime = n
		case "lost":
			s.Lost = n
		}
	}
	return s
}

// Restore records the audit state and rules now and puts them back when
// the test ends: `auditctl -D`, the rules that were there (none if there
// were none), `auditctl -e` as it was, backlog limit and wait time as they
// were, and `auditctl --reset-lost` if lost was 0 (a count that was not 0
// is evidence, left alone). It fails the test if the test process is
// still the registered audit daemon then. Call it after Lock.
func Restore(t testing.TB) {
	t.Helper()
	before := Status(t)
	rules := auditctl(t, "-l")
	if bytes.HasPrefix(bytes.TrimSpace(rules), []byte("No rules")) {
		rules = nil
	}
	t.Cleanup(func() {
		// Errors, not fatals: one failed step must not skip the others.
		step := func(args ...string) {
			t.Helper()
			if out, err := run(args...); err != nil {
				t.Errorf("audittest: restore: %v\n%s", err, out)
			}
		}
		now := Status(t)
		if now.PID == os.Getpid() {
			t.Errorf("audittest: the test left pid %d (itself) registered as the audit daemon", now.PID)
		}
		step("-D")
		if len(rules) > 0 {
			f := filepath.Join(t.TempDir(), "audit.rules")
			if err := os.WriteFile(f, rules, 0o600); err != nil {
				t.Errorf("audittest: restore: %v", err)
			} else {
				step("-R", f)
			}
		}
		if now.Enabled != before.Enabled && before.Enabled != 2 {
			step("-e", strconv.Itoa(before.Enabled))
		}
		if now.BacklogLimit != before.BacklogLimit {
			step("-b", strconv.Itoa(before.BacklogLimit))
		}
		if now.BacklogWaitTime != before.BacklogWaitTime {
			step("--backlog_wait_time", strconv.Itoa(before.BacklogWaitTime))
		}
		if before.Lost == 0 {
			step("--reset-lost")
		}
	})
}

// Auditctl runs auditctl with args and returns its output, failing the
// test if it fails.
func Auditctl(t testing.TB, args ...string) []byte {
	t.Helper()
	return auditctl(t, args...)
}

func auditctl(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := run(args...)
	if err != nil {
		t.Fatalf("audittest: %v\n%s", err, out)
	}
	return out
}

func run(args ...string) ([]byte, error) {
	path, err := exec.LookPath("auditctl")
	if err != nil {
		return nil, fmt.Errorf("auditctl not found (apt-get install -y auditd): %w", err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("auditctl %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// RequireRoot skips the test unless it runs as root. Tests that need
// kernel audit call it first; as root, a missing facility is a failure.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (kernel audit); euid %d", os.Geteuid())
	}
}
