// Package sourcetest is the conformance suite of taskevent.Source: every
// source of task events (the eBPF tracker, the proc connector) runs it
// from its own tests, so the promises written on the interface are
// checked once, the same way, on each.
//
// The suite runs real processes and needs a live source (root, as CI
// runs): a source that cannot open fails, never skips.
package sourcetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/taskevent"
	"github.com/contid/contid/internal/testing/testwait"
)

// Config says how to get a source under test.
type Config struct {
	// Open returns a new open source; the suite closes it.
	Open func(t *testing.T) taskevent.Source
	// ReadParks is the frame a Read blocked for the next event parks in
	// (testwait.Parked), so the suite acts only once Read is blocked.
	ReadParks string
}

// Run runs the suite.
func Run(t *testing.T, cfg Config) {
	t.Run("CloseInterruptsRead", func(t *testing.T) { closeInterruptsRead(t, cfg) })
	t.Run("CancelInterruptsRead", func(t *testing.T) { cancelInterruptsRead(t, cfg) })
	t.Run("TryReadTakesWhatHappened", func(t *testing.T) { tryReadTakesWhatHappened(t, cfg) })
	t.Run("ReadSeesAProcess", func(t *testing.T) { readSeesAProcess(t, cfg) })
}

// closeInterruptsRead: Close ends a blocked Read with os.ErrClosed, and
// every later Read and TryRead; Close may be called again.
func closeInterruptsRead(t *testing.T, cfg Config) {
	src := cfg.Open(t)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := src.Read(context.Background()); err != nil {
				errc <- err
				return
			}
		}
	}()
	testwait.Parked(t, cfg.ReadParks)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Receive(t, "Read's return after Close", errc); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("blocked Read after Close: %v, want os.ErrClosed", err)
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
	}
	if _, _, err := src.TryRead(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("TryRead after Close: %v, want os.ErrClosed", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// cancelInterruptsRead: the end of ctx ends a blocked Read with ctx's
// error (cancel, deadline), and the source goes on working.
func cancelInterruptsRead(t *testing.T, cfg Config) {
	src := cfg.Open(t)
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = src.Read(ctx) // events of other processes may come first
		}
		errc <- err
	}()
	testwait.Parked(t, cfg.ReadParks)
	cancel()
	if err := testwait.Receive(t, "Read's return after cancel", errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now())
	defer dcancel()
	var err error
	for err == nil {
		_, err = src.Read(dctx)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: %v, want context.DeadlineExceeded", err)
	}
	pid := runTrue(t)
	readUntilExit(t, src, pid)
}

// tryReadTakesWhatHappened: with nobody in Read, TryRead until ok is
// false returns the events of a process that ended before the first call.
func tryReadTakesWhatHappened(t *testing.T, cfg Config) {
	src := cfg.Open(t)
	defer src.Close()
	pid := runTrue(t)
	var kinds []taskevent.Kind
	for {
		ev, ok, err := src.TryRead()
		if errors.Is(err, taskevent.ErrMalformed) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if ev.TGID == pid {
			kinds = append(kinds, ev.Kind)
		}
	}
	if !hasInOrder(kinds, taskevent.KindFork, taskevent.KindExec, taskevent.KindExit) {
		t.Fatalf("TryRead after the process ended: %v for pid %d, want fork, exec, exit", kinds, pid)
	}
}

// readSeesAProcess: Read returns a process's fork, exec and exit in
// order, each naming it.
func readSeesAProcess(t *testing.T, cfg Config) {
	src := cfg.Open(t)
	defer src.Close()
	pid := runTrue(t)
	kinds := readUntilExit(t, src, pid)
	if !hasInOrder(kinds, taskevent.KindFork, taskevent.KindExec, taskevent.KindExit) {
		t.Fatalf("Read: %v for pid %d, want fork, exec, exit", kinds, pid)
	}
}

// runTrue runs /bin/true to its end and returns its pid.
func runTrue(t *testing.T) int32 {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pid
}

// readUntilExit reads until pid's exit and returns the kinds of its
// events; it fails when reading goes idle first.
func readUntilExit(t *testing.T, src taskevent.Source, pid int32) []taskevent.Kind {
	t.Helper()
	var kinds []taskevent.Kind
	for {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Idle())
		ev, err := src.Read(ctx)
		cancel()
		switch {
		case errors.Is(err, taskevent.ErrMalformed):
			continue
		case err != nil:
			t.Fatalf("reading until pid %d exits (seen %v): %v", pid, kinds, err)
		}
		if ev.TGID != pid {
			continue
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == taskevent.KindExit && ev.TID == pid {
			return kinds
		}
	}
}

// hasInOrder reports whether want occur in kinds in that order.
func hasInOrder(kinds []taskevent.Kind, want ...taskevent.Kind) bool {
	for _, k := range kinds {
		if len(want) > 0 && k == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}
