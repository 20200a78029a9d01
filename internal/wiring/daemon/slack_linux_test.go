package daemon

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// slacks reads every thread's timer slack.
func slacks(t *testing.T) map[string]time.Duration {
	t.Helper()
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]time.Duration{}
	for _, tid := range tids {
		b, err := os.ReadFile("/proc/" + tid.Name() + "/timerslack_ns")
		if err != nil {
			continue // ended meanwhile
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil {
			t.Fatalf("thread %s: %q: %v", tid.Name(), b, err)
		}
		m[tid.Name()] = time.Duration(n)
	}
	return m
}

func TestRaiseTimerSlack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting other threads' timer slack needs CAP_SYS_NICE (root)")
	}
	// Threads parked in the runtime, and more started while it runs.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					time.Sleep(time.Microsecond)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	least := 3*time.Millisecond + 7 // an odd value no default has
	if err := raiseTimerSlack(least); err != nil {
		t.Fatal(err)
	}
	for tid, s := range slacks(t) {
		if s < least {
			t.Errorf("thread %s: slack %v, want at least %v", tid, s, least)
		}
	}
	// A larger slack is kept, not lowered.
	if err := raiseTimerSlack(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for tid, s := range slacks(t) {
		if s < least {
			t.Errorf("thread %s: slack lowered to %v", tid, s)
		}
	}
}
