package auditlog

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/testing/testwait"
)

// The crash test re-executes the test binary as a child that writes lines
// until it is killed; these variables pass it its job.
const (
	crashEnvPath   = "AUDITLOG_CRASH_CHILD_PATH"
	crashEnvPolicy = "AUDITLOG_CRASH_CHILD_POLICY"
	crashEnvBig    = "AUDITLOG_CRASH_CHILD_BIG" // "1": bigLine, else testLine
)

// crashLines returns the line maker and size limit of a crash run. Big
// lines take hundreds of pages each, so the kill often lands inside a
// write(2) and leaves a partial line for Open to end.
func crashLines(big bool) (gen func(int) []byte, maxBytes int64) {
	if big {
		return bigLine, 32 << 20
	}
	return testLine, 64 << 10
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		return // an entry point, not a test: crash child: only run by TestCrashLeavesWholeLines
	}
	var p FlushPolicy
	if err := p.UnmarshalText([]byte(os.Getenv(crashEnvPolicy))); err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	// Small files and keep_logs: the kill also lands in rotations, and
	// nothing is deleted, so the parent can check every line.
	gen, maxBytes := crashLines(os.Getenv(crashEnvBig) == "1")
	w, err := Open(Config{Path: path, Flush: p, Freq: 10, MaxBytes: maxBytes, MaxAction: KeepLogs}, nil)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	for seq := 0; ; seq++ {
		if err := w.WriteLine(gen(seq)); err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		// The ack: this line was accepted. Unbuffered, so the parent
		// sees every ack the child made before it died.
		os.Stdout.WriteString(strconv.Itoa(seq) + "\n")
	}
}

// TestCrashLeavesWholeLines kills a writing process at random moments
// (SIGKILL: no deferred code, no flush) and checks the logs it leaves:
// every line whole and in order, every acknowledged line present (except
// under FlushNone, whose buffer dies with the process), and a clean next
// line after reopening. A system crash cannot be tested this way; the
// O_DSYNC/O_SYNC/fsync calls are what covers it.
func TestCrashLeavesWholeLines(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	torn := 0
	for _, p := range allPolicies {
		for run := range 6 {
			big := run >= 4
			t.Run(fmt.Sprintf("%v/%d", p, run), func(t *testing.T) {
				if crashOnce(t, p, big, rng.IntN(30_000)) {
					torn++
				}
			})
		}
	}
	t.Logf("%d runs left a partial last line", torn)
}

// crashOnce runs one child, kills it, checks its logs and reports whether
// it left a partial line.
func crashOnce(t *testing.T, p FlushPolicy, big bool, delayMicros int) bool {
	gen, _ := crashLines(big)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvPolicy+"="+p.String())
	if big {
		cmd.Env = append(cmd.Env, crashEnvBig+"=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		lastAck  atomic.Int64
		first    = make(chan struct{})
		readDone = make(chan string)
	)
	lastAck.Store(-1)
	go func() {
		var problem string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seq, err := strconv.Atoi(sc.Text())
			if err != nil {
				problem = sc.Text()
				continue
			}
			if lastAck.Swap(int64(seq)) == -1 {
				close(first)
			}
		}
		readDone <- problem
	}()
	// The child's first ack, or its end without one; starting is one step,
	// given testwait.Idle.
	select {
	case <-first:
	case problem := <-readDone:
		cmd.Wait()
		t.Fatalf("child ended before its first ack (%q); stderr: %s", problem, stderr.String())
	case <-time.After(testwait.Idle()):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child wrote nothing in %v; stderr: %s", testwait.Idle(), stderr.String())
	}
	// A random moment in the child's writing: the point of the test.
	time.Sleep(time.Duration(delayMicros) * time.Microsecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if problem := <-readDone; problem != "" {
		t.Fatalf("child: %s; stderr: %s", problem, stderr.String())
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL; stderr: %s", err, stderr.String())
	}
	acked := int(lastAck.Load())

	names, _ := logFiles(t, path)
	next, torn := 0, ""
	for i, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if i == len(names)-1 {
			// The newest file may end in a partial line: Linux lets
			// SIGKILL stop a write(2) between pages.
			if j := bytes.LastIndexByte(b, '\n'); j+1 < len(b) {
				torn = string(b[j+1:])
				b = b[:j+1]
			}
		} else if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Fatalf("%s (not the newest) ends in a partial line", name)
		}
		if len(b) == 0 {
			continue
		}
		next = checkSeqs(t, filepath.Base(name), strings.Split(string(b[:len(b)-1]), "\n"), next, gen)
	}
	if torn != "" && !strings.HasPrefix(string(gen(next)), torn) {
		t.Fatalf("partial last line %.80q is not the start of line %d", torn, next)
	}
	t.Logf("killed after %d µs: %d lines acked, %d on disk in %d files, partial tail %d bytes", delayMicros, acked+1, next, len(names), len(torn))
	if p != FlushNone && next <= acked {
		t.Fatalf("line %d was acknowledged but is not in the log (last on disk %d)", acked, next-1)
	}

	// Reopening ends the partial line; the next line is whole. (No size
	// limit: the line must land in the file with the partial line. The
	// policy does not matter for that, and FlushNone does not wait for the
	// dead child's dirty pages to reach the disk.)
	w := mustOpen(t, Config{Path: path, Flush: FlushNone})
	if err := w.WriteLine(gen(next)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantRepairs := uint64(0)
	if torn != "" {
		wantRepairs = 1
	}
	if got := w.Stats().TailRepairs; got != wantRepairs {
		t.Errorf("TailRepairs %d, want %d", got, wantRepairs)
	}
	names, _ = logFiles(t, path)
	lines := readLines(t, names[len(names)-1])
	if last := lines[len(lines)-1]; last != string(gen(next)) {
		t.Fatalf("line after reopening %.80q, want line %d", last, next)
	}
	if torn != "" && lines[len(lines)-2] != torn {
		t.Fatalf("partial line not kept apart: %.80q", lines[len(lines)-2])
	}
	return torn != ""
}
