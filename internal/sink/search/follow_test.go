package search

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/contid/contid/internal/contid"
)

// TestFollow appends events to a log, rotates it by rename, and checks that a follower of
// --contid 4 prints exactly the matching events, each once, in order.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	ev := func(serial int, cid string) string {
		return line("SYSCALL", 1795687200+int64(serial), serial, "pid=1 key=\"k\"") +
			line("UNKNOWN[2901]", 1795687200+int64(serial), serial, "pid=1 record=1 contid="+cid) +
			line("EOE", 1795687200+int64(serial), serial, "")
	}
	write := func(p, s string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	write(path, ev(1, "4")+ev(2, "5"))
	q := Query{Contids: []contid.ID{4}}
	got := make(chan uint64, 100)
	fl, err := NewFollower(path, &q, 0, func(e *Event) error { got <- e.Stamp.Serial; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Follow(ctx, fl, 5*time.Millisecond, 50*time.Millisecond, func() error { return nil }) }()
	expect := func(want uint64) {
		t.Helper()
		select { // an idle timeout per event, not a deadline on the whole
		case s := <-got:
			if s != want {
				t.Fatalf("followed event %d, want %d", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event within 10 s of idleness, want %d", want)
		}
	}
	expect(1)
	write(path, ev(3, "7,^4")+ev(4, "9"))
	expect(3)
	// A half-written line waits for its end.
	half := ev(5, "4")
	write(path, half[:20])
	write(path, half[20:])
	expect(5)
	// Rotation: the last event of the old file may be unread when it is
	// renamed (writers rename a file they no longer write to).
	write(path, ev(6, "4"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write(path, ev(7, "5")+ev(8, "4,^2"))
	expect(6)
	expect(8)
	// A user record is complete only when the next line or idleness says so.
	write(path, fmt.Sprintf("type=USER msg=audit(1795687300.000:9): pid=1 msg='a=b'\n")+line("UNKNOWN[2901]", 1795687300, 9, "pid=1 record=1 contid=4"))
	expect(9)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		t.Fatalf("extra event %d", s)
	default:
	}
}
