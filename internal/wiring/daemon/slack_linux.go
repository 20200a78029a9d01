package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// timerSlack is the least timer slack the daemon runs with (what systemd
// sets with TimerSlackNSec=): how late the kernel may fire a timer of
// ours so it can fire it with others. The daemon's timers are batching
// windows and ticks of 100 ms and more, none a deadline of a millisecond.
//
// The default slack, 50 µs, is what the Go runtime's monitor thread
// (sysmon) pays for: it polls every 20 µs while any goroutine runs or sits
// in a system call (an fsync of a log: half a millisecond), and every poll
// is a sleep and a wakeup. Measured on a 2-CPU VM at 50 execs a second
// under an execve and exit_group rule: 1 ms halved the daemon's context
// switches (290 to 155 a second) and cut its CPU by a fifth; 5 and 20 ms
// saved little more.
const timerSlack = time.Millisecond

// raiseTimerSlack raises every thread's timer slack to at least least;
// threads the runtime starts later inherit it from the thread that starts
// them. A larger slack (the service manager's) is kept. Setting another
// thread's slack needs CAP_SYS_NICE; without it only the calling
// thread's is raised, and the error says so (the daemon runs on, at a
// higher cost).
func raiseTimerSlack(least time.Duration) error {
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	if time.Duration(cur) >= least {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(least), 0, 0, 0); err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	// The runtime may start a thread while we go through them, from one
	// not yet raised: go round until a listing finds nothing new.
	val := []byte(strconv.FormatInt(int64(least), 10))
	var done []string
	for {
		tids, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("timer slack: %w", err)
		}
		fresh := false
		for _, t := range tids {
			if slices.Contains(done, t.Name()) {
				continue
			}
			fresh = true
			done = append(done, t.Name())
			// The per-thread file is at /proc/TID, not under task/.
			if err := raiseOne("/proc/"+t.Name()+"/timerslack_ns", val, least); err != nil {
				return err
			}
		}
		if !fresh {
			return nil
		}
	}
}

// raiseOne sets one thread's slack unless it is larger already; a thread
// that ended meanwhile is no error.
func raiseOne(path string, val []byte, least time.Duration) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	if n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && time.Duration(n) >= least {
		return nil
	}
	if err := os.WriteFile(path, val, 0); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("timer slack: %w", err)
	}
	return nil
}
