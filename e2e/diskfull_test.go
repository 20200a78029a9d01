package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/surface/api"
)

// TestLogDiskFull: the daemon, the kernel's audit daemon with an execve
// rule, writes to a small tmpfs that a paced exec loop fills. It keeps
// serving the API, says so in `contid status` (log_disk_full, log_queued,
// log_dropped_disk_full) and in its log; when space is freed it writes
// again, the loop's later records among them, and every line it dropped
// is accounted for by CONTID_LOSS kind=disk_full records whose counts sum
// to the status counter.
func TestLogDiskFull(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	logs := t.TempDir()
	if err := syscall.Mount("tmpfs", logs, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs for the logs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(logs, syscall.MNT_DETACH) })
	ballast := filepath.Join(logs, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 768<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	rulesFile, cfg := filepath.Join(dir, "audit.rules"), filepath.Join(dir, "contid.toml")
	if err := os.WriteFile(rulesFile, []byte("-a always,exit -F arch=b64 -S execve -F key=contid-full\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfg, "[log]\nmax_log_file = 0\ndisk_full_queue = 64\n[containers]\nmax_log_file = 0\ndisk_full_queue = 16\n")
	d := &daemon{t: t, dir: dir, logDir: logs, socket: filepath.Join(dir, "contid.sock"),
		pinDir: fmt.Sprintf("/sys/fs/bpf/contid-e2e-full-%d", os.Getpid()),
		extra:  []string{"--audit", "primary", "--audit-rules", rulesFile, "--config", cfg, "--json-log"}}
	t.Cleanup(func() { os.RemoveAll(d.pinDir) })
	d.start()
	t.Cleanup(d.stop)
	cl := api.NewClient(d.socket)
	status := func() map[string]uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := cl.Status(ctx)
		if err != nil {
			t.Fatalf("status while the disk is full: %v", err)
		}
		return st.Counters
	}
	// Progress while the disk is full is what the daemon receives.
	waitStatus := func(what string, cond func(map[string]uint64) bool) map[string]uint64 {
		t.Helper()
		var last uint64
		since := time.Now()
		for {
			c := status()
			if cond(c) {
				return c
			}
			if c["audit_received"] != last {
				last, since = c["audit_received"], time.Now()
			} else if time.Since(since) > idle {
				t.Fatalf("waiting for %s: nothing received for %v; counters %v\n%s", what, idle, c, d.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	l := startLoop(t, d, "4104", 20)
	c := waitStatus("lines dropped on the full disk", func(c map[string]uint64) bool {
		return c["log_disk_full"] == 1 && c["log_dropped_disk_full"] > 0
	})
	t.Logf("disk full: %v", c)
	// Still serving: a registration goes through.
	if _, errOut, code := d.sh(`"$C" exec --contid 4105 -- true`); code != 0 {
		t.Fatalf("registration while the disk is full: %s", errOut)
	}
	if !strings.Contains(d.output(), "disk full") {
		t.Errorf("the daemon's log does not say the disk is full:\n%s", d.output())
	}

	// Space returns, for good: the loop goes on writing.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", logs, "tmpfs", syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, "size=256m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	at := l.ticks()
	waitStatus("writing to resume", func(c map[string]uint64) bool { return c["log_disk_full"] == 0 && c["log_queued"] == 0 })
	l.waitTicks(at + 10)
	n := l.end()

	// Every dropped line is in a CONTID_LOSS record, once. The status
	// counts a drop before its record is written (once its log writes
	// again), so the two meet when every drop is recorded.
	var reported, dropped uint64
	var perLog map[string]uint64
	lossRecords := func() {
		perLog, reported = map[string]uint64{}, 0
		forRecords(t, filepath.Join(logs, "audit.log"), func(r records.Record) {
			if k, _ := r.Get("kind"); r.Type != records.ContidLoss || k != "disk_full" {
				return
			}
			v, _ := r.Get("count")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("CONTID_LOSS count %q", v)
			}
			log, _ := r.Get("log")
			perLog[log] += n
			reported += n
		})
	}
	waitProgress(t, d, "audit.log", "CONTID_LOSS records for every dropped line", func() bool {
		lossRecords()
		dropped = status()["log_dropped_disk_full"]
		if reported > dropped {
			t.Fatalf("CONTID_LOSS disk_full records sum to %d (%v), more than status log_dropped_disk_full %d", reported, perLog, dropped)
		}
		return reported == dropped
	})
	if dropped == 0 {
		t.Fatal("no line was dropped: the test did not fill the queues")
	}
	t.Logf("loop: %d ticks, %d in the host log; dropped lines by log %v", n, countIn(d.hostLogs(), `exe="`+l.tick+`"`), perLog)
	if st := status(); st["log_disk_full"] != 0 || st["log_dropped_disk_full"] != dropped {
		t.Errorf("status after: %v", st)
	}
}
