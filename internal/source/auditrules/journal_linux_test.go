package auditrules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/auditnl"
)

// fakeKernel holds rules as the kernel does: once each, EEXIST for a
// second add, ENOENT for deleting what is not there.
type fakeKernel struct {
	rules []auditnl.Rule
	adds  int
	fail  string // a key whose add fails with EINVAL
}

func (k *fakeKernel) find(r auditnl.Rule) int {
	for i, x := range k.rules {
		if x.Equal(r) {
			return i
		}
	}
	return -1
}

func (k *fakeKernel) AddRule(r auditnl.Rule) error {
	if key(r) == k.fail {
		return unix.EINVAL
	}
	if k.find(r) >= 0 {
		return unix.EEXIST
	}
	k.adds++
	k.rules = append(k.rules, r)
	return nil
}

func (k *fakeKernel) DeleteRule(r auditnl.Rule) error {
	i := k.find(r)
	if i < 0 {
		return unix.ENOENT
	}
	k.rules = append(k.rules[:i], k.rules[i+1:]...)
	return nil
}

func (k *fakeKernel) ListRules() ([]auditnl.Rule, error) {
	return append([]auditnl.Rule(nil), k.rules...), nil
}

func parse(t *testing.T, s string) []Rule {
	t.Helper()
	rs, err := Parse(strings.NewReader(s), "r")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// crash drops the journal as a killed process would: no Finish, the lock
// released by the kernel.
func crash(j *Journal) { j.releaseLock() }

func TestJournalAdoptsAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", StateFile)
	const (
		execve = "-a always,exit -F arch=b64 -S execve -k exec\n"
		admin  = "-w /etc/passwd -p wa -k pw\n"
		kill   = "-a always,exit -F arch=b64 -S kill -k kill\n"
	)
	want := parse(t, execve+admin+kill)
	k := &fakeKernel{}
	k.AddRule(parse(t, admin)[0].Kernel) // an administrator's, before contid
	found := auditnl.Status{Enabled: 0, BacklogLimit: 64, BacklogWaitTime: 15000, Lost: 5}

	j := NewJournal(path, nil)
	orig, err := j.Adopt(found)
	if err != nil || orig != found || j.LastLost() != 5 {
		t.Fatalf("fresh Adopt: %+v, %v, lost %d", orig, err, j.LastLost())
	}
	// A second daemon cannot take the state while the first holds it.
	if _, err := NewJournal(path, nil).Adopt(found); !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("second Adopt while held: %v", err)
	}
	ours, err := j.Load(k, want)
	if err != nil || len(ours) != 2 || len(k.rules) != 3 {
		t.Fatalf("Load: %d ours, %d in the kernel, %v", len(ours), len(k.rules), err)
	}
	if err := j.SetLost(9); err != nil {
		t.Fatal(err)
	}
	crash(j)

	// The next daemon finds the kernel as the killed one left it.
	left := auditnl.Status{Enabled: 1, BacklogLimit: 8192, BacklogWaitTime: 15000, Lost: 12}
	j = NewJournal(path, nil)
	orig, err = j.Adopt(left)
	if err != nil || orig.Enabled != 0 || orig.BacklogLimit != 64 || j.LastLost() != 9 {
		t.Fatalf("Adopt after a crash: %+v, %v, lost %d; want the settings found first and lost 9", orig, err, j.LastLost())
	}
	adds := k.adds
	ours, err = j.Load(k, want)
	if err != nil || len(ours) != 2 || len(k.rules) != 3 || k.adds != adds {
		t.Fatalf("Load after a crash: %d ours, %d in the kernel, %d new adds, %v", len(ours), len(k.rules), k.adds-adds, err)
	}
	crash(j)

	// Killed again; the next start has a rules file without execve.
	j = NewJournal(path, nil)
	if _, err := j.Adopt(left); err != nil {
		t.Fatal(err)
	}
	ours, err = j.Load(k, parse(t, admin+kill))
	if err != nil || len(ours) != 1 || len(k.rules) != 2 || k.find(want[0].Kernel) >= 0 {
		t.Fatalf("Load of a shorter file: %d ours, %d in the kernel, %v", len(ours), len(k.rules), err)
	}
	if err := j.Unload(k); err != nil {
		t.Fatal(err)
	}
	if len(k.rules) != 1 || k.find(want[1].Kernel) != 0 {
		t.Fatalf("after Unload the kernel holds %d rules; want only the administrator's", len(k.rules))
	}
	if err := j.Finish(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after a clean Finish: %v", err)
	}
	// And the next start is fresh.
	j = NewJournal(path, nil)
	if orig, err := j.Adopt(left); err != nil || orig != left {
		t.Fatalf("Adopt after a clean stop: %+v, %v", orig, err)
	}
	j.Finish(true)
}

// TestJournalCrashBeforeAdd: rules recorded (write-ahead) but never added,
// and rules deleted at a stop that was killed half-way, are put right.
func TestJournalCrashBeforeAdd(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFile)
	want := parse(t, "-a always,exit -F arch=b64 -S execve -k a\n-a always,exit -F arch=b64 -S kill -k b\n-a always,exit -F arch=b64 -S ptrace -k c\n")
	k := &fakeKernel{fail: key(want[2].Kernel)}
	j := NewJournal(path, nil)
	if _, err := j.Adopt(auditnl.Status{}); err != nil {
		t.Fatal(err)
	}
	// The third add fails after the first two: all three were recorded.
	if _, err := j.Load(k, want); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("Load with a refused rule: %v", err)
	}
	crash(j)
	k.fail = ""
	j = NewJournal(path, nil)
	if _, err := j.Adopt(auditnl.Status{}); err != nil {
		t.Fatal(err)
	}
	if ours, err := j.Load(k, want); err != nil || len(ours) != 3 || len(k.rules) != 3 {
		t.Fatalf("after adoption: %d ours, %d loaded, %v", len(ours), len(k.rules), err)
	}
	// A stop that deleted one rule, then died.
	k.DeleteRule(want[2].Kernel)
	crash(j)
	j = NewJournal(path, nil)
	if _, err := j.Adopt(auditnl.Status{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Unload(k); err != nil || len(k.rules) != 0 {
		t.Fatalf("Unload after a half-done stop: %d left, %v", len(k.rules), err)
	}
	j.Finish(true)
}

// TestJournalIgnores: a state file of another boot, or one that others
// could have written, is not adopted.
func TestJournalIgnores(t *testing.T) {
	for name, spoil := range map[string]func(path string){
		"other boot": func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), bootID(), "00000000-0000-0000-0000-000000000000", 1)), 0o600)
		},
		"group-writable": func(p string) { os.Chmod(p, 0o620) },
		// What a local user could plant in a world-writable socket
		// directory: a state naming an administrator's rule as contid's,
		// to have contid delete it at stop.
		"another user's": func(p string) {
			if err := os.Chown(p, 65534, 65534); err != nil {
				panic(err)
			}
		},
		"corrupt": func(p string) { os.WriteFile(p, []byte("{"), 0o600) },
		"symlink": func(p string) {
			os.Rename(p, p+".real")
			os.Symlink(p+".real", p)
		},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "another user's" && os.Geteuid() != 0 {
				t.Skip("needs root to give the file away")
			}
			path := filepath.Join(t.TempDir(), StateFile)
			j := NewJournal(path, nil)
			if _, err := j.Adopt(auditnl.Status{BacklogLimit: 64}); err != nil {
				t.Fatal(err)
			}
			crash(j)
			spoil(path)
			j = NewJournal(path, nil)
			orig, err := j.Adopt(auditnl.Status{BacklogLimit: 8192})
			if err != nil || orig.BacklogLimit != 8192 {
				t.Errorf("adopted: %+v, %v", orig, err)
			}
			j.Finish(true)
		})
	}
}
