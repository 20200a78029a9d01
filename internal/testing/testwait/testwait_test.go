package testwait

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeTB records a Fatalf and ends the goroutine, as testing.T does.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run runs fn with a fakeTB on a goroutine of its own and returns the
// fatal message, "" if none.
func run(fn func(tb testing.TB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.fatal
}

func TestIdleEnv(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want time.Duration
	}{
		{"", DefaultIdle}, {"2m", 2 * time.Minute}, {"bogus", DefaultIdle}, {"-1s", DefaultIdle}, {"0", DefaultIdle},
	} {
		t.Setenv(IdleEnv, tt.env)
		if got := Idle(); got != tt.want {
			t.Errorf("%s=%q: Idle %v, want %v", IdleEnv, tt.env, got, tt.want)
		}
	}
}

// TestUntilProgress: a wait whose mark keeps moving outlasts Idle many
// times over; one whose mark stops fails after Idle, naming what and the
// mark.
func TestUntilProgress(t *testing.T) {
	const idle = 100 * time.Millisecond
	t.Setenv(IdleEnv, idle.String())
	start := time.Now()
	n := 0
	if msg := run(func(tb testing.TB) {
		Until(tb, "a moving count", func() (bool, any) {
			n++
			return time.Since(start) > 5*idle, n
		})
	}); msg != "" {
		t.Fatalf("a wait with progress failed: %s", msg)
	}

	start = time.Now()
	msg := run(func(tb testing.TB) {
		Until(tb, "a stuck count", func() (bool, any) { return false, 7 })
	})
	took := time.Since(start)
	if !strings.Contains(msg, "a stuck count") || !strings.Contains(msg, "last mark 7") {
		t.Fatalf("message %q, want it to name the wait and the mark", msg)
	}
	if took < idle {
		t.Fatalf("failed after %v, before the idle period %v", took, idle)
	}

	// The mark stops after moving: the idle period counts from its last move.
	start = time.Now()
	var moving time.Duration
	msg = run(func(tb testing.TB) {
		Until(tb, "a count that stops", func() (bool, any) {
			if d := time.Since(start); d < 3*idle {
				moving = d
				return false, d
			}
			return false, "stopped"
		})
	})
	if msg == "" || time.Since(start) < 3*idle+idle {
		t.Fatalf("failed %q after %v; want a failure an idle period after the mark stopped at %v", msg, time.Since(start), moving)
	}
}

func TestForAndReceive(t *testing.T) {
	t.Setenv(IdleEnv, "100ms")
	if msg := run(func(tb testing.TB) { For(tb, "never", func() bool { return false }) }); !strings.Contains(msg, "never") {
		t.Fatalf("For on a false condition: %q", msg)
	}
	i := 0
	if msg := run(func(tb testing.TB) { For(tb, "third poll", func() bool { i++; return i == 3 }) }); msg != "" || i != 3 {
		t.Fatalf("For: %q after %d polls", msg, i)
	}
	ch := make(chan int, 1)
	ch <- 5
	var got int
	if msg := run(func(tb testing.TB) { got = Receive(tb, "a value", ch) }); msg != "" || got != 5 {
		t.Fatalf("Receive: %d, %q", got, msg)
	}
	if msg := run(func(tb testing.TB) { Receive(tb, "nothing", ch) }); !strings.Contains(msg, "nothing") {
		t.Fatalf("Receive on an empty channel: %q", msg)
	}
}

// TestWatch: the context ends with ErrIdle only after Idle without Moved.
func TestWatch(t *testing.T) {
	const idle = 100 * time.Millisecond
	t.Setenv(IdleEnv, idle.String())
	w := NewWatch(context.Background(), "reads")
	defer w.Stop()
	start := time.Now()
	for time.Since(start) < 4*idle {
		if err := w.Err(); err != nil {
			t.Fatalf("ended while moving: %v", err)
		}
		w.Moved()
		time.Sleep(idle / 10)
	}
	<-w.Context().Done()
	if err := w.Err(); !errors.Is(err, ErrIdle) || !strings.Contains(err.Error(), "reads") {
		t.Fatalf("cause %v, want ErrIdle naming the watch", err)
	}

	parent, cancel := context.WithCancel(context.Background())
	w2 := NewWatch(parent, "x")
	defer w2.Stop()
	cancel()
	<-w2.Context().Done()
	if err := w2.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cause after the parent ended: %v", err)
	}
}

//go:noinline
func blockedReceiver(ch chan int) { <-ch }

// TestParked: Parked returns once a goroutine in the named function waits,
// and fails while none does.
func TestParked(t *testing.T) {
	t.Setenv(IdleEnv, "200ms")
	ch := make(chan int)
	go blockedReceiver(ch)
	if msg := run(func(tb testing.TB) { Parked(tb, "testwait.blockedReceiver") }); msg != "" {
		t.Fatal(msg)
	}
	ch <- 1
	if msg := run(func(tb testing.TB) { Parked(tb, "testwait.noSuchFunction") }); msg == "" {
		t.Fatal("Parked found a goroutine in a function that does not exist")
	}
}

func TestParkedStates(t *testing.T) {
	dump := "goroutine 1 [running]:\nmain.reader()\n\n" +
		"goroutine 7 [IO wait, 2 minutes]:\ninternal/poll.(*FD).RawRead()\nx.(*Conn).receive()\n\n" +
		"goroutine 9 [runnable]:\ny.(*Reader).Read()\n"
	for _, tt := range []struct {
		frame string
		want  bool
	}{
		{"x.(*Conn).receive", true}, {"main.reader", false}, {"y.(*Reader).Read", false}, {"z.none", false},
	} {
		if got := parked([]byte(dump), []byte(tt.frame)); got != tt.want {
			t.Errorf("parked(%s) = %v, want %v", tt.frame, got, tt.want)
		}
	}
}
