package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// logFiles returns the names of path and its rotated files that exist,
// oldest first, and the numbers of the rotated ones.
func logFiles(t *testing.T, path string) ([]string, []int) {
	t.Helper()
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err != nil {
			t.Fatalf("unexpected file %s", m)
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	var names []string
	for _, n := range slices.Backward(nums) {
		names = append(names, fmt.Sprintf("%s.%d", path, n))
	}
	if _, err := os.Stat(path); err == nil {
		names = append(names, path)
	}
	return names, nums
}

func TestRotationBySize(t *testing.T) {
	// 100-byte lines, 10 to a file.
	for _, tc := range []struct {
		name      string
		action    Action
		numLogs   int
		lines     int
		wantNums  []int // rotated files left
		wantFirst int   // first line still on disk
		rotations uint64
		suspended uint64
	}{
		{"rotate 4", Rotate, 4, 95, []int{1, 2, 3}, 60, 9, 0},
		{"rotate 2", Rotate, 2, 95, []int{1}, 80, 9, 0},
		{"rotate default 5", Rotate, 0, 95, []int{1, 2, 3, 4}, 50, 9, 0},
		{"rotate exactly full", Rotate, 3, 30, []int{1, 2}, 0, 2, 0},
		{"rotate not yet", Rotate, 3, 10, nil, 0, 0, 0},
		{"keep_logs never deletes", KeepLogs, 2, 95, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, 9, 0},
		{"ignore", Ignore, 0, 95, nil, 0, 0, 0},
		{"suspend", Suspend, 0, 95, nil, 0, 0, 85},
	} {
		for _, p := range allPolicies {
			t.Run(tc.name+"/"+p.String(), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				w := mustOpen(t, Config{Path: path, MaxBytes: 1000, NumLogs: tc.numLogs, MaxAction: tc.action, Flush: p, Freq: 3})
				for seq := range tc.lines {
					err := w.WriteLine(fixedLine(seq))
					if tc.action == Suspend && seq >= 10 {
						if !errors.Is(err, ErrSuspended) || !errors.Is(err, ErrDropped) {
							t.Fatalf("line %d: %v, want ErrSuspended", seq, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("line %d: %v", seq, err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				names, nums := logFiles(t, path)
				if !slices.Equal(nums, tc.wantNums) {
					t.Fatalf("rotated files %v, want %v", nums, tc.wantNums)
				}
				next := tc.wantFirst
				for i, name := range names {
					lines := readLines(t, name)
					if tc.action != Ignore && len(lines) != 10 && i != len(names)-1 {
						t.Errorf("%s has %d lines, want 10", name, len(lines))
					}
					if fi, _ := os.Stat(name); tc.action != Ignore && fi.Size() > 1000 {
						t.Errorf("%s has %d bytes, more than MaxBytes", name, fi.Size())
					}
					next = checkSeqs(t, filepath.Base(name), lines, next, fixedLine)
				}
				if want := tc.lines - int(tc.suspended); next != want {
					t.Errorf("last line on disk %d, want %d", next-1, want-1)
				}
				st := w.Stats()
				if st.Rotations != tc.rotations || st.Dropped.Suspended != tc.suspended || st.RotateErrors != 0 {
					t.Errorf("stats %+v", st)
				}
				if st.Suspended != (tc.suspended > 0) {
					t.Errorf("Suspended %v", st.Suspended)
				}
				checkAccounting(t, w, tc.lines)
			})
		}
	}
}

func TestSuspendResume(t *testing.T) {
	for name, resume := range map[string]func(*Writer) error{"Rotate": (*Writer).Rotate, "Reopen": (*Writer).Reopen} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			w := mustOpen(t, Config{Path: path, MaxBytes: 1000, MaxAction: Suspend})
			for seq := range 12 {
				w.WriteLine(fixedLine(seq))
			}
			if !w.Stats().Suspended {
				t.Fatal("not suspended")
			}
			if name == "Reopen" {
				// The operator moves the full log away, then resumes.
				if err := os.Rename(path, filepath.Join(dir, "archived")); err != nil {
					t.Fatal(err)
				}
			}
			if err := resume(w); err != nil {
				t.Fatal(err)
			}
			if w.Stats().Suspended {
				t.Fatal("still suspended")
			}
			if err := w.WriteLine(fixedLine(10)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			full := path + ".1"
			if name == "Reopen" {
				full = filepath.Join(dir, "archived")
			}
			next := checkSeqs(t, "full", readLines(t, full), 0, fixedLine)
			checkSeqs(t, "new", readLines(t, path), next, fixedLine)
			checkAccounting(t, w, 13)
		})
	}
}

func TestRotateByHand(t *testing.T) {
	t.Run("NumLogs 1", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		w := mustOpen(t, Config{Path: path, NumLogs: 1})
		defer w.Close()
		if err := w.Rotate(); !errors.Is(err, ErrNoRotation) {
			t.Fatalf("Rotate = %v, want ErrNoRotation", err)
		}
	})
	t.Run("NumLogs 1 keep_logs", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		w := mustOpen(t, Config{Path: path, NumLogs: 1, MaxAction: KeepLogs})
		defer w.Close()
		for range 3 {
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
		if _, nums := logFiles(t, path); !slices.Equal(nums, []int{1, 2, 3}) {
			t.Fatalf("rotated %v", nums)
		}
	})
	t.Run("buffered lines go to the rotated file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		w := mustOpen(t, Config{Path: path, Flush: FlushNone})
		for seq := range 5 {
			w.WriteLine(fixedLine(seq))
		}
		if err := w.Rotate(); err != nil {
			t.Fatal(err)
		}
		w.WriteLine(fixedLine(5))
		w.Close()
		if len(readLines(t, path+".1")) != 5 || len(readLines(t, path)) != 1 {
			t.Fatal("lines in the wrong file")
		}
	})
}

func TestRotationExistingFiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		action   Action
		numLogs  int
		existing []int
		want     map[int]string // rotated number → content, "" = absent
	}{
		{"shift and overwrite the oldest", Rotate, 4, []int{1, 2, 3}, map[int]string{1: "cur", 2: "1", 3: "2", 4: ""}},
		{"remove logs beyond NumLogs", Rotate, 3, []int{1, 2, 3, 4, 5, 7}, map[int]string{1: "cur", 2: "1", 3: "", 4: "", 5: "", 7: "7"}},
		{"fill a gap instead of deleting", Rotate, 4, []int{2, 3}, map[int]string{1: "cur", 2: "2", 3: "3"}},
		{"fill a later gap", Rotate, 5, []int{1, 3, 4}, map[int]string{1: "cur", 2: "1", 3: "3", 4: "4"}},
		{"keep_logs shifts all", KeepLogs, 2, []int{1, 2, 3}, map[int]string{1: "cur", 2: "1", 3: "2", 4: "3"}},
		{"keep_logs fills the first gap", KeepLogs, 2, []int{1, 2, 4}, map[int]string{1: "cur", 2: "1", 3: "2", 4: "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			for _, n := range tc.existing {
				if err := os.WriteFile(fmt.Sprintf("%s.%d", path, n), []byte(strconv.Itoa(n)+"\n"), 0o400); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(path, []byte("cur\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			w := mustOpen(t, Config{Path: path, NumLogs: tc.numLogs, MaxAction: tc.action})
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			for n, want := range tc.want {
				b, err := os.ReadFile(fmt.Sprintf("%s.%d", path, n))
				if want == "" {
					if err == nil {
						t.Errorf(".%d exists (%q)", n, b)
					}
					continue
				}
				if string(b) != want+"\n" {
					t.Errorf(".%d = %q, %v; want %q", n, b, err, want)
				}
			}
			if b, _ := os.ReadFile(path); len(b) != 0 {
				t.Errorf("new log %q", b)
			}
		})
	}
}

func TestRotationFailureKeepsTheLine(t *testing.T) {
	for _, p := range []FlushPolicy{FlushNone, FlushData} {
		t.Run(p.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			// A directory in the way: renaming the log onto it fails.
			blocker := path + ".1"
			if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
			w := mustOpen(t, Config{Path: path, MaxBytes: 1000, NumLogs: 2, Flush: p})
			writeFixed(t, w, 0, 10)
			err := w.WriteLine(fixedLine(10))
			if !errors.Is(err, ErrRotate) || errors.Is(err, ErrDropped) {
				t.Fatalf("WriteLine at max size = %v, want ErrRotate and not ErrDropped", err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
				t.Errorf("log mode after failed rotation %v, %v", fi.Mode(), err)
			}
			if err := w.WriteLine(fixedLine(11)); !errors.Is(err, ErrRotate) {
				t.Fatalf("next line = %v, want ErrRotate again", err)
			}
			if err := os.RemoveAll(blocker); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteLine(fixedLine(12)); err != nil {
				t.Fatalf("after clearing the way: %v", err)
			}
			closeAndCheckSplit(t, w, ".1", blocker, path, 12)
			if st := w.Stats(); st.RotateErrors != 2 || st.Rotations != 1 || st.Lines != 13 {
				t.Errorf("stats %+v", st)
			}
			checkAccounting(t, w, 13)
		})
	}
}
