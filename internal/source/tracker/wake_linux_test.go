package tracker

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/testing/testwait"
)

// TestWakeNext: with wakeups batched by the hour, WakeNext makes the next
// event of a task with a contid wake Wait; an event of another task leaves
// the request standing (it stays batched), and the wakeup consumes it.
func TestWakeNext(t *testing.T) {
	tr, _ := openTest(t, Config{Batch: time.Hour, NSScan: -1})
	in := startHeld(t, "exit 0")
	if err := tr.SetContid(in.pid(), contid.ID(16)); err != nil {
		t.Fatal(err)
	}
	out := startHeld(t, "exit 0")
	// The last wakeup is now: for an hour only a quarter-full ring or
	// WakeNext wakes a reader.
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	if err := tr.objs.LastWakeup.Set(uint64(ts.Nano())); err != nil {
		t.Fatal(err)
	}
	if err := tr.WakeNext(); err != nil {
		t.Fatal(err)
	}
	wanted := func() uint32 {
		var v uint32
		if err := tr.objs.WakeContained.Get(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if wanted() != 1 {
		t.Fatal("WakeNext did not ask for a wakeup")
	}
	out.release(t)
	if err := out.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// Its exit event is in the ring before the process is reaped.
	if !drainForExit(t, tr, out.pid()) {
		t.Fatalf("no exit event of %d", out.pid())
	}
	if wanted() != 1 {
		t.Fatal("an event of a task without a contid took the wakeup WakeNext asked for")
	}
	waited := make(chan error, 1)
	go func() { waited <- tr.Wait(context.Background()) }()
	testwait.Parked(t, "tracker.(*Tracker).Wait")
	in.release(t)
	if err := testwait.Receive(t, "Wait's return after the contained task's exit", waited); err != nil {
		t.Fatal(err)
	}
	if wanted() != 0 {
		t.Fatal("the wakeup left the request standing")
	}
}
