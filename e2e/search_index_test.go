package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/contid/contid/internal/sink/search"
)

// TestSearchIndexDaemon: the daemon keeps the host log's search index as
// it writes, with kernel audit on, through its own rotations by size, a
// rename with SIGHUP (logrotate's way), a SIGKILL in the middle of its
// work and a restart. Each time the logs stand still, searches that use
// only the sidecars the daemon wrote (--read-only-index) print byte for
// byte what a scan prints, and they do use them.
func TestSearchIndexDaemon(t *testing.T) {
	d, _ := startLogDaemon(t, "[log]\nmax_log_file = 1\nnum_logs = 30\n")
	host := filepath.Join(d.dir, "audit.log")
	l := startLoop(t, d, "4201", 100)
	waitProgress(t, d, "audit.log*", "two rotations of the host log", func() bool { _, err := os.Stat(host + ".2"); return err == nil })

	// logrotate: shift the rotated files, rename the log, then SIGHUP.
	files, err := search.Files(d.dir) // oldest first
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files[:len(files)-1] {
		if err := os.Rename(f, fmt.Sprintf("%s.%d", host, len(files)-i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(host, host+".1"); err != nil {
		t.Fatal(err)
	}
	at := l.ticks()
	l.waitTicks(at + 5) // lines reach the renamed file until the reopen
	before := len(d.output())
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitSaid(t, d, before, "reloaded configuration")
	l.waitTicks(l.ticks() + 20)
	// The index reports its work: lines taken in, a sidecar at least at
	// each rotation, no error.
	if c := apiStatus(t, d.socket).Counters; c["search_index_lines"] == 0 || c["search_index_sidecars"] < 2 || c["search_index_errors"] != 0 {
		t.Errorf("search index counters: lines %d, sidecars %d, errors %d", c["search_index_lines"], c["search_index_sidecars"], c["search_index_errors"])
	}

	d.kill() // in the middle of the loop's records
	indexedSearches(t, d, "after SIGKILL", 1)

	d.start()
	l.waitTicks(l.ticks() + 20)
	l.end()
	d.stop()
	indexedSearches(t, d, "after the restart and stop", 0)
}

// indexedSearches runs searches over the host logs, through the daemon's
// sidecars only and by scanning, and fails when their outputs differ or
// when more than unindexed files were not searched through a sidecar.
func indexedSearches(t *testing.T, d *daemon, when string, unindexed int) {
	t.Helper()
	criteria := [][]string{
		nil,
		{"--contid", "4201"},
		{"--contid", "4201", "--exact", "-m", "SYSCALL"},
		{"-k", "contid-logs"},
		{"-m", "CONTAINER_OP,CONTAINER_ID"},
		{"--contid", "4202"}, // nothing
	}
	statsRe := regexp.MustCompile(`(\d+) files, .* (\d+) indexed files`)
	for _, c := range criteria {
		run := func(mode string) (string, string, int) {
			args := append([]string{"search", "-if", d.dir, mode, "--stats"}, c...)
			cmd := exec.Command(contidBin, args...)
			return runCmd(t, cmd)
		}
		got, stats, code := run("--read-only-index")
		want, _, wantCode := run("--no-index")
		if got != want || code != wantCode {
			t.Fatalf("%s: search %q through the daemon's index: exit %d, %d bytes; the scan: exit %d, %d bytes", when, c, code, len(got), wantCode, len(want))
		}
		if c != nil && c[0] == "--contid" && c[1] == "4201" && !strings.Contains(got, "contid=4201") {
			t.Fatalf("%s: search %q found none of the loop's events", when, c)
		}
		m := statsRe.FindStringSubmatch(stats)
		if m == nil {
			t.Fatalf("%s: no stats in %q", when, stats)
		}
		files, _ := strconv.Atoi(m[1])
		indexed, _ := strconv.Atoi(m[2])
		if files < 4 || indexed < files-unindexed {
			t.Fatalf("%s: search %q used the daemon's sidecars for %d of %d files", when, c, indexed, files)
		}
	}
}
