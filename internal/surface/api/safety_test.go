package api

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestSocketCreationRefusesPlantedPaths: a symlink planted at the socket's
// path is never followed (its target keeps its mode); a socket
// directory that is a symlink, owned by another user, or writable by
// others is refused and left as it was.
func TestSocketCreationRefusesPlantedPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root (CI does): the checks are about root's directories")
	}
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, nil, 0o600)

	// A symlink at the socket path: replaced by the socket.
	dir := filepath.Join(base, "run")
	os.Mkdir(dir, 0o755)
	sock := filepath.Join(dir, "contid.sock")
	os.Symlink(victim, sock)
	if _, err := Listen(Config{Path: sock}, &fakeCore{}, discard()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a symlink: %v", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the symlink's target was chmod'ed to %v", fi.Mode().Perm())
	}

	for _, tt := range []struct {
		name  string
		plant func(dir string)
		want  string
	}{
		{"world-writable", func(dir string) { os.Mkdir(dir, 0o777); os.Chmod(dir, 0o777) }, "writable by group or others"},
		{"group-writable", func(dir string) { os.Mkdir(dir, 0o775); os.Chmod(dir, 0o775) }, "writable by group or others"},
		{"owned by a user", func(dir string) { os.Mkdir(dir, 0o755); os.Chown(dir, 65534, 65534) }, "owned by uid 65534"},
		{"a symlink", func(dir string) { os.Mkdir(dir+".real", 0o755); os.Symlink(dir+".real", dir) }, "symbolic link"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tt.name, " ", "-"))
			tt.plant(dir)
			before, _ := os.Lstat(dir)
			_, err := Listen(Config{Path: filepath.Join(dir, "contid.sock")}, &fakeCore{}, discard())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Listen: %v; want a refusal naming %q", err, tt.want)
			}
			after, _ := os.Lstat(dir)
			if before.Mode() != after.Mode() {
				t.Fatalf("the directory was changed: %v -> %v", before.Mode(), after.Mode())
			}
			if _, err := os.Lstat(filepath.Join(dir, "contid.sock")); err == nil {
				t.Fatal("a socket was created in the refused directory")
			}
		})
	}
}

// TestSocketMode: the socket gets its mode without a chmod by path after
// listen, and no bind directory is left behind.
func TestSocketMode(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "contid.sock")
	srv, err := Listen(Config{Path: sock, Mode: 0o660}, &fakeCore{}, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v, %v", fi, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestAdmission: per-uid limits, a pool for unprivileged callers, slots
// kept for privileged ones, and release.
func TestAdmission(t *testing.T) {
	a := admission{max: 6, reserved: 2, perUID: 2, byUID: map[uint32]int{}}
	steps := []struct {
		uid  uint32
		priv bool
		ok   bool
	}{
		{1000, false, true}, {1000, false, true}, {1000, false, false}, // per uid
		{1001, false, true}, {1001, false, true}, {1002, false, false}, // unprivileged pool (4) full
		{0, true, true}, {0, true, true}, // reserved
		{0, true, false}, // all 6 taken
	}
	for i, s := range steps {
		if err := a.take(s.uid, s.priv); (err == nil) != s.ok {
			t.Fatalf("step %d (uid %d, privileged %v): %v", i, s.uid, s.priv, err)
		}
	}
	a.release(1000, false)
	if err := a.take(1000, false); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := a.take(1002, false); err == nil {
		t.Fatal("over the unprivileged pool after release")
	}
}

// TestWithoutPeerPidFD: on a kernel without SO_PEERPIDFD the daemon opens
// a pidfd at accept and still serves; a caller that exits is ESRCH.
func TestWithoutPeerPidFD(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root (CI does)")
	}
	cl, _, _ := newTestServerWith(t, func(c *Config) { c.noPeerPidFD = true })
	if _, err := cl.SetContid(context.Background(), SetRequest{PID: child1, Contid: "31"}); err != nil {
		t.Fatalf("set without SO_PEERPIDFD: %v", err)
	}
	if _, err := cl.Task(context.Background(), child1); err != nil {
		t.Fatal(err)
	}
}
