package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/testing/testwait"
)

// TestReload (kernel audit off): SIGHUP applies a changed configuration
// file; a broken one is refused and changes nothing, but the logs are
// reopened all the same; the daemon keeps serving either way. The tests
// with kernel audit on are in logs_test.go.
func TestReload(t *testing.T) {
	requireRoot(t)
	cfg := filepath.Join(t.TempDir(), "contid.toml")
	if err := os.WriteFile(cfg, []byte("[log]\nflush = \"incremental\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, config: cfg}
	dir, _ := os.MkdirTemp("", "contid-e2e-")
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	d.dir, d.socket = dir, filepath.Join(dir, "contid.sock")
	d.pinDir = "/sys/fs/bpf/contid-e2e-reload-" + itoa(os.Getpid())
	t.Cleanup(func() { os.RemoveAll(d.pinDir) })
	d.start()
	t.Cleanup(d.stop)

	// A refused file still reopens the logs (logrotate's SIGHUP).
	host := filepath.Join(d.dir, "audit.log")
	if err := os.Rename(host, host+"-moved"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte("[log]\nflush = \"sometimes\"\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitOutput(t, d, "configuration refused, keeping the old one")
	waitOutput(t, d, "reopened the logs")
	if _, err := os.Stat(host); err != nil {
		t.Fatalf("the log renamed away was not started anew after a refused reload: %v", err)
	}
	os.WriteFile(cfg, []byte("[log]\nflush = \"sync\"\nnum_logs = 3\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitOutput(t, d, "reloaded configuration")
	if out, errOut, code := d.sh(`sleep 600 & "$C" set $! 4711; R=$?; kill $!; exit $R`); code != 0 {
		t.Fatalf("after reload: %s %s", out, errOut)
	}
}

// waitOutput waits until the daemon has said want; it fails when the
// daemon made no progress (d.progress) for testwait.Idle.
func waitOutput(t *testing.T, d *daemon, want string) {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("the daemon to say %q", want), func() (bool, any) {
		return strings.Contains(d.output(), want), d.progress()
	})
}
