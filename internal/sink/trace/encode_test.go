package trace

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
)

// TestEncodeRoundTrip: every input the daemon records decodes to itself,
// with every field set, and the kernel's answers with it.
func TestEncodeRoundTrip(t *testing.T) {
	var set ns.Set
	set[ns.Net] = ns.ID{Dev: 4, Ino: 4026531840, Unique: 9}
	set[ns.PID] = ns.ID{Dev: 4, Ino: 4026531836}
	subj := engine.Subject{UID: 1, AUID: 2, Ses: 3, Comm: "sh \"x\"", Exe: "/bin/sh"}
	const now = 1_795_687_201_004_000_123
	ins := []engine.Input{
		engine.SeedTask{Time: now, PID: 10, TGID: 10, PPID: 1, Start: 250, ParentStart: 5, Born: now - 7, NS: set, Subject: subj, HasContid: true, Contid: 42, Capcontid: true},
		engine.SeedTask{Time: now, PID: 11, TGID: 10, Start: 251, Subject: engine.Subject{AUID: engine.UnsetID, Ses: engine.UnsetID}},
		engine.SeedContainer{Time: now, ID: 42, Owner: engine.TaskRef{PID: 9, Start: 77}, Parent: contid.Unset, Name: "web"},
		engine.SeedContainer{Time: now, ID: 43, Parent: 42},
		engine.Fork{Time: now, Parent: 10, Child: 12, ChildTGID: 12, Start: 300, NS: set, HasContid: true, Contid: contid.Unset, HasCloneFlags: true, CloneFlags: unix.CLONE_NEWNET | unix.CLONE_PARENT, CloneParent: true},
		engine.Fork{Time: now, Parent: 10, Child: 13, ChildTGID: 10, Start: 301, Subject: &subj},
		engine.Exec{Time: now, PID: 12, OldTID: 14, Comm: "true", Exe: "/bin/true", UID: 5, AUID: 6, Ses: 7, HasCreds: true, NS: set},
		engine.Exit{Time: now, PID: 12, NS: set},
		engine.NSChange{Time: now, PID: 10, Op: engine.Unshare, NS: set},
		engine.NSChange{Time: now, PID: 10, Op: engine.Setns, NS: set},
		engine.NSChange{Time: now, PID: 10, Op: engine.Observed, NS: set},
		engine.SetContid{Time: now, Caller: engine.TaskRef{PID: 10, Start: 250}, ForParent: true, CallerCap: true, Target: 12, Value: "0x10 res=success", Name: "n", Subject: &subj},
		engine.SetContid{Time: now, Caller: engine.TaskRef{PID: 10}, Target: 12, Value: "4660"},
		engine.SetCapcontid{Time: now, Caller: engine.TaskRef{PID: 10, Start: 250}, CallerCap: true, Target: 12, Value: "1", Subject: &subj},
		engine.Join{Time: now, PID: 12, Contid: 42, Mover: 9, Tagged: true},
		engine.Join{Time: now, PID: 12, Contid: 42, Mover: 9},
	}
	kernel := []KernelResult{{}, ResultOf(errors.Join(errors.New("tag"), unix.ESRCH))}
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	enc.Comment("recorded by a test")
	for i, in := range ins {
		var k []KernelResult
		if i%2 == 1 {
			k = kernel
		}
		enc.Encode(in, k)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder(&buf, "round-trip")
	for i, want := range ins {
		got, err := dec.Next()
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("input %d:\n got %#v\nwant %#v", i, got, want)
		}
		k := dec.Kernel()
		if i%2 == 1 {
			if !reflect.DeepEqual(k, kernel) {
				t.Errorf("input %d: kernel %v, want %v", i, k, kernel)
			}
			if err := k[1].Err(); !errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), "tag") {
				t.Errorf("kernel error %v lost its errno or text", err)
			}
		} else if len(k) != 0 {
			t.Errorf("input %d: kernel %v, want none", i, k)
		}
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last input: %v", err)
	}
}
