package auditnl

import (
	"errors"
	"testing"

	"github.com/contid/contid/internal/source/auditnl/audittest"
)

// TestAdopt: a daemon that adopts what a crashed predecessor left puts back
// the settings the predecessor found, not those it finds; a failing Adopt
// changes nothing.
func TestAdopt(t *testing.T) {
	setup(t)
	// The state the predecessor found (Restore puts back the real one).
	audittest.Auditctl(t, "-e", "0")
	before := audittest.Status(t)
	// What a killed predecessor left: audit on, its backlog settings.
	audittest.Auditctl(t, "-e", "1")
	audittest.Auditctl(t, "-b", "777")
	left := audittest.Status(t)

	boom := errors.New("boom")
	if _, err := Open(Config{Enable: true, BacklogLimit: 8192, Adopt: func(Status) (Status, error) { return Status{}, boom }}, testLogger(t)); !errors.Is(err, boom) {
		t.Fatalf("Open with a failing Adopt: %v", err)
	}
	if now := audittest.Status(t); now != left {
		t.Fatalf("a failed Open changed the state: %+v, was %+v", now, left)
	}

	var found Status
	c := open(t, Config{Enable: true, BacklogLimit: 8192, Adopt: func(st Status) (Status, error) {
		found = st
		orig := st
		orig.Enabled, orig.BacklogLimit = uint32(before.Enabled), uint32(before.BacklogLimit)
		return orig, nil
	}})
	if found.Enabled != 1 || found.BacklogLimit != 777 {
		t.Errorf("Adopt was given %+v, want what was left (enabled 1, backlog 777)", found)
	}
	if now := audittest.Status(t); now.Enabled != 1 || now.BacklogLimit != 8192 || now.BacklogWaitTime != before.BacklogWaitTime {
		t.Errorf("while open: %+v", now)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	now := audittest.Status(t)
	if now.Enabled != before.Enabled || now.BacklogLimit != before.BacklogLimit || now.BacklogWaitTime != before.BacklogWaitTime || now.PID != 0 {
		t.Errorf("after Close: %+v, want the state before the predecessor: %+v", now, before)
	}

	// Without Enable: what the predecessor enabled is still put back.
	audittest.Auditctl(t, "-e", "1")
	c = open(t, Config{Adopt: func(st Status) (Status, error) { st.Enabled = 0; return st, nil }})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if now := audittest.Status(t); now.Enabled != 0 {
		t.Errorf("after Close without Enable: enabled %d, want 0", now.Enabled)
	}
}
