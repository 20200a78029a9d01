package auditlog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestEveryPolicyWritesEveryLine(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w := mustOpen(t, Config{Path: path, Flush: p, Freq: 7})
			const n = 2000
			huge := 0
			for seq := range n {
				line := testLine(seq)
				if seq == 1234 {
					// Longer than the FlushNone buffer.
					line = append(line[:len(line)-len(" end"):len(line)-len(" end")], bytes.Repeat([]byte{line[len(line)-5]}, bufferSize)...)
					line = append(line, " end"...)
					huge = len(line)
				}
				if err := w.WriteLine(line); err != nil {
					t.Fatalf("line %d: %v", seq, err)
				}
			}
			if p != FlushNone {
				// Every accepted line is in the kernel already.
				checkSeqsWithHuge(t, readLines(t, path), huge)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			checkSeqsWithHuge(t, readLines(t, path), huge)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			lines := readLines(t, path)
			if len(lines) != n {
				t.Fatalf("%d lines, want %d", len(lines), n)
			}
			checkSeqsWithHuge(t, lines, huge)
			st := w.Stats()
			if st.Lines != n || st.Buffered != 0 || st.Dropped.Total() != 0 || st.WriteErrors+st.SyncErrors+st.TailRepairs != 0 {
				t.Errorf("stats %+v", st)
			}
			if fi, _ := os.Stat(path); uint64(fi.Size()) != st.Bytes {
				t.Errorf("Bytes %d, file has %d", st.Bytes, fi.Size())
			}
		})
	}
}

// checkSeqsWithHuge checks testLine lines, one of which may be the huge
// variant of line 1234.
func checkSeqsWithHuge(t *testing.T, lines []string, huge int) {
	t.Helper()
	for i, l := range lines {
		if i == 1234 && huge > 0 {
			if len(l) != huge || !strings.HasPrefix(l, string(testLine(i)[:60])) {
				t.Fatalf("huge line %d: length %d, want %d", i, len(l), huge)
			}
			continue
		}
		checkSeqs(t, "log", lines[i:i+1], i, testLine)
	}
}

func TestBadLineRefused(t *testing.T) {
	for _, p := range []FlushPolicy{FlushNone, FlushData} {
		for _, bad := range []string{"\n", "a\nb", "type=X msg=audit(1.0:1): a=1\ntype=Y msg=audit(1.0:1): forged=1", "\r", "a\rb", "end\r\n", "\nstart"} {
			t.Run(p.String()+"/"+strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(bad), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				w := mustOpen(t, Config{Path: path, Flush: p})
				if err := w.WriteLine([]byte("before")); err != nil {
					t.Fatal(err)
				}
				err := w.WriteLine([]byte(bad))
				if !errors.Is(err, ErrBadLine) || !errors.Is(err, ErrDropped) {
					t.Fatalf("WriteLine(%q) = %v, want ErrBadLine and ErrDropped", bad, err)
				}
				if err := w.WriteLine([]byte("after")); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(path); string(b) != "before\nafter\n" {
					t.Fatalf("file %q", b)
				}
				if st := w.Stats(); st.Dropped.BadLine != 1 || st.Lines != 2 {
					t.Errorf("stats %+v", st)
				}
				checkAccounting(t, w, 3)
			})
		}
	}
}

func TestTornTailRepaired(t *testing.T) {
	for _, tc := range []struct {
		name, before, want string
		repairs            uint64
	}{
		{"new", "", "next\n", 0},
		{"empty", "", "next\n", 0},
		{"whole", "a\nb\n", "a\nb\nnext\n", 0},
		{"torn", "a\nb=par", "a\nb=par\nnext\n", 1},
		{"torn only line", "type=SYSCALL msg=au", "type=SYSCALL msg=au\nnext\n", 1},
		{"zero-filled tail", "a\n\x00\x00\x00", "a\n\x00\x00\x00\nnext\n", 1},
	} {
		for _, p := range []FlushPolicy{FlushNone, FlushSync} {
			t.Run(tc.name+"/"+p.String(), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				if tc.name != "new" {
					if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				w := mustOpen(t, Config{Path: path, Flush: p})
				if p != FlushNone {
					// The repair is written at Open, before any line.
					if b, _ := os.ReadFile(path); len(b) > 0 && b[len(b)-1] != '\n' {
						t.Fatalf("after Open the file still ends %q", b)
					}
				}
				if err := w.WriteLine([]byte("next")); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.want {
					t.Fatalf("file %q, want %q", b, tc.want)
				}
				if st := w.Stats(); st.TailRepairs != tc.repairs || st.Lines != 1 {
					t.Errorf("stats %+v, want %d repairs", st, tc.repairs)
				}
			})
		}
	}
}

func TestModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name     string
		mode     os.FileMode
		existing os.FileMode // 0: no file yet
		want     os.FileMode
	}{
		{"default", 0, 0, 0o600},
		{"group", 0o640, 0, 0o640},
		{"existing too open", 0, 0o644, 0o600},
		{"existing read-only (rotated file moved back)", 0, 0o400, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "containers", "0123")
			path := filepath.Join(dir, "audit.log")
			if tc.existing != 0 {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("old\n"), tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			w := mustOpen(t, Config{Path: path, Mode: tc.mode})
			if fi, err := os.Stat(path); err != nil || fi.Mode() != tc.want {
				t.Errorf("file mode %v (%v), want %v", fi.Mode(), err, tc.want)
			}
			if tc.existing == 0 {
				if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("created directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
				}
			}
			if err := w.WriteLine([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if err := w.Rotate(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path + ".1"); err != nil || fi.Mode() != tc.want&^0o222 {
				t.Errorf("rotated file mode %v (%v), want %v", fi.Mode(), err, tc.want&^0o222)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode() != tc.want {
				t.Errorf("new file mode %v (%v), want %v", fi.Mode(), err, tc.want)
			}
			w.Close()
		})
	}
}

func TestOpenRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: link}, nil); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Open(symlink) = %v, want ELOOP", err)
	}
	fifo := filepath.Join(dir, "fifo.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: fifo}, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(fifo) = %v, want not a regular file", err)
	}
	if _, err := Open(Config{Path: dir}, nil); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Open(dir) = %v, want EISDIR", err)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no path", Config{}},
		{"directory path", Config{Path: "/tmp/x/"}},
		{"negative max", Config{Path: "p", MaxBytes: -1}},
		{"negative num_logs", Config{Path: "p", NumLogs: -1}},
		{"too many logs", Config{Path: "p", NumLogs: 1000}},
		{"negative freq", Config{Path: "p", Freq: -1}},
		{"unknown flush", Config{Path: "p", Flush: 9}},
		{"unknown action", Config{Path: "p", MaxAction: 9}},
		{"setuid mode", Config{Path: "p", Mode: os.ModeSetuid | 0o600}},
		{"owner cannot write", Config{Path: "p", Mode: 0o400}},
		{"rotate into nothing", Config{Path: "p", MaxBytes: 100, NumLogs: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Path = filepath.Join(t.TempDir(), tc.cfg.Path)
			if tc.name == "no path" {
				tc.cfg.Path = ""
			}
			if tc.name == "directory path" {
				tc.cfg.Path += "/"
			}
			if w, err := Open(tc.cfg, nil); err == nil {
				w.Close()
				t.Fatalf("Open(%+v) succeeded", tc.cfg)
			}
		})
	}
}

func TestTextNames(t *testing.T) {
	for _, p := range allPolicies {
		var q FlushPolicy = 99
		if err := q.UnmarshalText([]byte(strings.ToUpper(p.String()))); err != nil || q != p {
			t.Errorf("FlushPolicy %v: parsed %v, %v", p, q, err)
		}
	}
	for _, a := range []Action{Rotate, KeepLogs, Ignore, Suspend} {
		var b Action = 99
		if err := b.UnmarshalText([]byte(a.String())); err != nil || b != a {
			t.Errorf("Action %v: parsed %v, %v", a, b, err)
		}
	}
	var a Action
	if err := a.UnmarshalText([]byte("SYSLOG")); err != nil || a != Ignore {
		t.Errorf("syslog: %v, %v", a, err)
	}
	if err := a.UnmarshalText([]byte("exec")); err == nil {
		t.Error("exec accepted")
	}
	var p FlushPolicy
	if err := p.UnmarshalText([]byte("always")); err == nil {
		t.Error("flush always accepted")
	}
}

func TestClosed(t *testing.T) {
	w := mustOpen(t, Config{Path: filepath.Join(t.TempDir(), "audit.log")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLine([]byte("late")); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrDropped) {
		t.Errorf("WriteLine after Close = %v", err)
	}
	for name, f := range map[string]func() error{"Close": w.Close, "Flush": w.Flush, "Rotate": w.Rotate, "Reopen": w.Reopen} {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if st := w.Stats(); st.Dropped.Closed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReopen(t *testing.T) {
	for _, p := range []FlushPolicy{FlushNone, FlushIncrementalAsync} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			w := mustOpen(t, Config{Path: path, Flush: p})
			writeFixed(t, w, 0, 10)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			// An outside tool moves the log away (logrotate's way).
			if err := os.Rename(path, filepath.Join(dir, "moved")); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteLine(fixedLine(10)); err != nil {
				t.Fatal(err)
			}
			if err := w.Reopen(); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteLine(fixedLine(11)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			next := checkSeqs(t, "moved", readLines(t, filepath.Join(dir, "moved")), 0, fixedLine)
			checkSeqs(t, "audit.log", readLines(t, path), next, fixedLine)
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	for _, p := range []FlushPolicy{FlushNone, FlushIncremental} {
		t.Run(p.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w := mustOpen(t, Config{Path: path, Flush: p, MaxBytes: 20 << 10, MaxAction: KeepLogs})
			const goroutines, each = 8, 300
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						if err := w.WriteLine(testLine(g*each + i)); err != nil {
							t.Error(err)
							return
						}
						if i%100 == 0 {
							_ = w.Stats()
							if err := w.Flush(); err != nil {
								t.Error(err)
							}
						}
					}
				})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if err := w.Rotate(); err != nil {
						t.Error(err)
					}
				}
			}()
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			seen := map[int]bool{}
			files, _ := filepath.Glob(path + "*")
			for _, f := range files {
				for _, l := range readLines(t, f) {
					seq, err := lineSeq(l, testLine)
					if err != nil || seen[seq] {
						t.Fatalf("%s: %v (duplicate %v)", f, err, seen[seq])
					}
					seen[seq] = true
				}
			}
			if len(seen) != goroutines*each {
				t.Errorf("%d lines in %d files, want %d", len(seen), len(files), goroutines*each)
			}
		})
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "audit.log")
	w := mustOpen(t, Config{Path: path})
	w.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: filepath.Join(path, "sub", "audit.log")}, nil); !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Open under a file = %v", err)
	}
}

// TestReopenFailureKeepsWriting: when the log cannot be opened again, the
// Writer goes on in the file it has (nothing is lost, the error says
// ErrRotate) and retries before each line.
func TestReopenFailureKeepsWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	moved := filepath.Join(dir, "moved")
	w := mustOpen(t, Config{Path: path, Flush: FlushIncremental})
	writeFixed(t, w, 0, 2)
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	// Something that is not a regular file takes the log's name.
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); !errors.Is(err, ErrRotate) {
		t.Fatalf("Reopen onto a FIFO = %v, want ErrRotate", err)
	}
	err := w.WriteLine(fixedLine(2))
	if !errors.Is(err, ErrRotate) || errors.Is(err, ErrDropped) {
		t.Fatalf("WriteLine while the log cannot be reopened = %v, want ErrRotate, not ErrDropped", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLine(fixedLine(3)); err != nil {
		t.Fatalf("WriteLine once the path is free: %v", err)
	}
	closeAndCheckSplit(t, w, "moved", moved, path, 3)
	if st := w.Stats(); st.RotateErrors != 2 || st.Lines != 4 {
		t.Errorf("stats %+v", st)
	}
}
