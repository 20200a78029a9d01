package output

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/sink/auditlog"
)

// TestReconfigure: after the container logs are renamed away, Reconfigure
// reopens them with the configuration Container gives now; events before
// are in the renamed files, events after in new ones.
func TestReconfigure(t *testing.T) {
	dir := t.TempDir()
	cpath := func(id contid.ID) string { return filepath.Join(dir, "containers", id.String(), "audit.log") }
	flush := auditlog.FlushIncremental
	o := New(Config{
		Host:      open(t, filepath.Join(dir, "audit.log")),
		Container: func(id contid.ID) auditlog.Config { return auditlog.Config{Path: cpath(id), Flush: flush} },
		MaxOpen:   4,
	})
	defer o.Close()
	o.Write(event(t, 7, rules.Container, 1))
	o.Write(event(t, 8, rules.Container, 2))
	o.Commit()
	for _, id := range []contid.ID{7, 8} {
		if err := os.Rename(cpath(id), cpath(id)+".old"); err != nil {
			t.Fatal(err)
		}
	}
	o.Write(event(t, 7, rules.Container, 3)) // pending at the reload
	flush = auditlog.FlushNone
	o.Reconfigure()
	o.Write(event(t, 8, rules.Container, 4))
	o.Commit()
	o.Write(event(t, 8, rules.Container, 5)) // buffered under FlushNone now
	if got := read(t, cpath(8)); strings.Contains(got, ":5)") {
		t.Errorf("flush = none did not apply: %q", got)
	}
	o.Flush()
	for path, want := range map[string][]string{
		cpath(7) + ".old": {"1", "3"}, cpath(8) + ".old": {"2"}, cpath(8): {"4", "5"},
	} {
		got := read(t, path)
		if n := strings.Count(got, "\n"); n != len(want) {
			t.Errorf("%s has %d lines, want serials %v:\n%s", path, n, want, got)
		}
		for _, s := range want {
			if !strings.Contains(got, "1795687201.100:"+s+")") {
				t.Errorf("%s lacks serial %s:\n%s", path, s, got)
			}
		}
	}
}

// TestDiskFullLosses: container logs on a full file system queue and then
// drop; Retry shows the condition in Stats, and once space returns
// TakeLosses reports each log's dropped lines exactly once, including a
// log closed meanwhile. Root (a real tmpfs), as in CI.
func TestDiskFullLosses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=64k,mode=0700"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 60<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	host := open(t, filepath.Join(t.TempDir(), "audit.log"))
	cpath := func(id contid.ID) string { return filepath.Join(dir, "containers", id.String(), "audit.log") }
	o := New(Config{
		Host:      host,
		Container: func(id contid.ID) auditlog.Config { return auditlog.Config{Path: cpath(id), QueueBytes: 1024} },
		MaxOpen:   2,
	})
	defer o.Close()
	for serial := range 200 {
		o.Write(event(t, contid.ID(7+serial%2), rules.Container, serial))
		o.Commit()
	}
	o.Retry()
	st := o.Stats()
	if !st.DiskFull || st.Queued == 0 || st.DroppedDiskFull == 0 {
		t.Fatalf("stats on a full disk: %+v", st)
	}
	if l := o.TakeLosses(); len(l) != 0 {
		t.Fatalf("losses reported while the disk is still full: %v", l)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	o.Write(event(t, 9, rules.Container, 500)) // closes the log of 7, which has dropped lines
	o.Commit()
	o.Retry()
	st = o.Stats()
	if st.DiskFull || st.Queued != 0 || st.OpenErrors != 0 || st.OpenLogs != 2 {
		t.Fatalf("stats once space is back: %+v", st)
	}
	var sum uint64
	seen := map[string]bool{}
	for _, l := range o.TakeLosses() {
		sum += l.Lines
		seen[l.Log] = true
	}
	if sum != st.DroppedDiskFull || !seen["containers/7/audit.log"] || !seen["containers/8/audit.log"] {
		t.Fatalf("losses sum to %d in %v, Stats.DroppedDiskFull %d", sum, seen, st.DroppedDiskFull)
	}
	if l := o.TakeLosses(); len(l) != 0 {
		t.Fatalf("losses reported twice: %v", l)
	}
}
