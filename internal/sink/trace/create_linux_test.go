package trace

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/core/engine"
)

// TestCreateRefuses: a trace file another user could read is refused: a
// symbolic link, a file an unprivileged user planted, a hard link; a
// file of the caller's own is emptied and made 0600.
func TestCreateRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to plant another user's file: run as root, as CI does")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o1777)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	planted := filepath.Join(dir, "planted")
	os.WriteFile(planted, nil, 0o666)
	os.Chown(planted, 65534, 65534)
	hard := filepath.Join(dir, "hard")
	os.Link(target, hard)
	for name, want := range map[string]error{link: unix.ELOOP, planted: unix.EPERM, hard: unix.EPERM} {
		if r, err := Create(name); !errors.Is(err, want) {
			if err == nil {
				r.Close()
			}
			t.Errorf("Create(%s) = %v, want %v", filepath.Base(name), err, want)
		}
	}
	own := filepath.Join(dir, "own")
	os.WriteFile(own, []byte("old contents\n"), 0o644)
	r, err := Create(own)
	if err != nil {
		t.Fatal(err)
	}
	r.Record(engine.Exit{Time: 1, PID: 5}, nil, nil)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(own)
	fi, _ := os.Stat(own)
	if fi.Mode().Perm() != 0o600 || len(b) == 0 || string(b[:1]) != "#" {
		t.Fatalf("own file: mode %v, contents %q", fi.Mode().Perm(), b)
	}
}
