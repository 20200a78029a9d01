package tracker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/source/taskevent"
)

// The benchmarks measure what the tracker costs a workload. Each runs its
// operation in a fresh helper process (this test binary, re-executed: a
// small Go process, unlike the test process, whose heap holds the kernel's
// parsed BTF and makes its own forks slow) with the tracker detached and
// attached, alternating in rounds within one run so that drift on a shared
// machine hits both, and reports detached-ns/op, attached-ns/op and their
// ratio (and the median of the per-round ratios, which resists a noisy
// round). Attached means: all programs attached, the helper tagged (it
// inherits from the tagged benchmark process, so every task it creates takes
// the inheritance copy), and a reader decoding every event as the daemon
// would. Run as root:
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/source/tracker

const benchRounds = 16

func benchPair(b *testing.B, workload string, cfg Config) {
	requireRoot(b)
	dir := testPinDir(b)
	per := max(b.N/benchRounds, 1)
	var detached, attached time.Duration
	var roundD, roundA [benchRounds]time.Duration
	var events atomic.Int64
	// The kernel's own accounting of the programs' run time (system-wide:
	// every task on the machine runs them).
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	progTime := map[string]*ebpf.ProgramStats{}
	b.ResetTimer()
	b.StopTimer()
	for r := range benchRounds {
		for _, on := range [2]bool{r%2 == 0, r%2 != 0} {
			if !on {
				debug.FreeOSMemory() // as before the attached run
				d := runWorkload(b, workload, per)
				detached += d
				roundD[r] = d
				continue
			}
			cfg.PinDir = dir
			tr, err := Open(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := tr.SetGroup(os.Getpid(), 0, 1); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := tr.Read(ctx); err != nil {
						return
					}
					events.Add(1)
				}
			}()
			// Open leaves tens of MB of parsed BTF behind: collect it
			// and return it to the OS now, or the collector and the
			// scavenger do it during the attached run, on the CPUs the
			// workload runs on (a daemon pays that once, at start).
			debug.FreeOSMemory()
			a := runWorkload(b, workload, per)
			attached += a
			roundA[r] = a
			// Let the reader drain what the round produced.
			time.Sleep(20 * time.Millisecond)
			cancel()
			<-done
			for name, p := range map[string]*ebpf.Program{
				"inherit": tr.objs.Inherit, "on_fork": tr.objs.OnFork,
				"on_exec": tr.objs.OnExec, "on_exit": tr.objs.OnExit,
			} {
				ps, err := p.Stats()
				if err != nil {
					b.Fatal(err)
				}
				acc := progTime[name]
				if acc == nil {
					acc = &ebpf.ProgramStats{}
					progTime[name] = acc
				}
				acc.Runtime += ps.Runtime
				acc.RunCount += ps.RunCount
			}
			st, err := tr.Stats()
			if err != nil {
				b.Fatal(err)
			}
			if st.Lost != 0 || st.InheritFailures != 0 {
				b.Errorf("round %d: %+v", r, st)
			}
			if err := tr.Close(); err != nil {
				b.Fatal(err)
			}
			// Detach the inheritance program and free the map: the
			// benchmark process is untagged again.
			if err := Unpin(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(per * benchRounds)
	d := float64(detached.Nanoseconds()) / n
	a := float64(attached.Nanoseconds()) / n
	b.ReportMetric(d, "detached-ns/op")
	b.ReportMetric(a, "attached-ns/op")
	b.ReportMetric(a/d, "ratio")
	// Per-round ratios: their median resists a noisy round.
	var ratios [benchRounds]float64
	for i := range ratios {
		ratios[i] = float64(roundA[i]) / float64(roundD[i])
	}
	slices.Sort(ratios[:])
	b.ReportMetric((ratios[benchRounds/2-1]+ratios[benchRounds/2])/2, "median-ratio")
	for name, ps := range progTime {
		if ps.RunCount > 0 {
			b.ReportMetric(float64(ps.Runtime.Nanoseconds())/float64(ps.RunCount), name+"-ns/run")
		}
	}
	// Events of the helper's start and exit included.
	b.ReportMetric(float64(events.Load())/n, "events/op")
}

// runWorkload runs n operations in a helper process and returns the time
// the helper measured around them.
func runWorkload(b *testing.B, workload string, n int) time.Duration {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=bench:%s:%d", helperEnv, workload, n))
	cmd.Stderr = os.Stderr
	b.StartTimer()
	out, err := cmd.Output()
	b.StopTimer()
	if err != nil {
		b.Fatalf("helper %s: %v", workload, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("helper %s says %q", workload, out)
	}
	return time.Duration(ns)
}

var workloads = map[string]func() error{
	"fork-exit":      forkExit,
	"fork-exec-exit": forkExecExit,
	"thread":         threadCycle,
	"getppid":        func() error { unix.Getppid(); return nil },
}

// benchHelper runs "bench:WORKLOAD:N" and prints the elapsed nanoseconds.
func benchHelper(spec string) {
	var name string
	var n int
	parts := strings.Split(spec, ":")
	if len(parts) == 3 {
		name = parts[1]
		n, _ = strconv.Atoi(parts[2])
	}
	op := workloads[name]
	if op == nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bad bench spec %q\n", spec)
		os.Exit(2)
	}
	start := time.Now()
	for range n {
		if err := op(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println(time.Since(start).Nanoseconds())
	os.Exit(0)
}

// rawFork is fork(2): the child exits at once, running nothing but the
// exit_group syscall (nosplit, so it cannot enter the Go scheduler).
//
//go:nosplit
//go:norace
func rawFork() (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return pid, errno
}

func forkExit() error {
	pid, errno := rawFork()
	if errno != 0 {
		return errno
	}
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(int(pid), &ws, 0, nil)
	return err
}

func forkExecExit() error {
	pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
	if err != nil {
		return err
	}
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	return err
}

// threadCycle makes the runtime end one OS thread and start another: a
// goroutine that exits while locked takes its thread with it, and the
// scheduler then needs a new one (events/op shows about one thread fork
// and one exit per op).
func threadCycle() error {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(done)
	}()
	<-done
	return nil
}

// benchModes measures a workload against the tracker in its default
// configuration (wakeups batched per 5 ms, namespace scan every second),
// in the daemon's (a wakeup only when a quarter of the ring is full: the
// daemon drains the ring at its tick and before each audit batch; the
// namespace scan runs on the daemon's tick, not here), with a wakeup for
// every event, and with the syscall tracepoints for setns/unshare.
func benchModes(b *testing.B, workload string) {
	b.Run("default", func(b *testing.B) { benchPair(b, workload, Config{}) })
	b.Run("daemon", func(b *testing.B) { benchPair(b, workload, Config{Batch: time.Hour, NSScan: -1}) })
	b.Run("wake=each", func(b *testing.B) { benchPair(b, workload, Config{Batch: -1}) })
	b.Run("nssyscalls", func(b *testing.B) { benchPair(b, workload, Config{NSSyscalls: true}) })
}

func BenchmarkForkExit(b *testing.B)     { benchModes(b, "fork-exit") }
func BenchmarkForkExecExit(b *testing.B) { benchModes(b, "fork-exec-exit") }
func BenchmarkThread(b *testing.B)       { benchModes(b, "thread") }
func BenchmarkGetppid(b *testing.B)      { benchModes(b, "getppid") }

// BenchmarkBatchLatency measures, with batched wakeups (a 300 ms period),
// how long after it happened the reader reads an event that follows a
// quiet spell (it wakes the reader: well under a period) and the tail of a
// burst of 20 short children (the reader's timer finds it: about a period
// at most). TestBatchWakeup checks that both are read at all.
func BenchmarkBatchLatency(b *testing.B) {
	const batch = 300 * time.Millisecond
	tr, _ := openTest(b, Config{Batch: batch, OnlyTagged: true, NSScan: -1})
	var first, tail time.Duration
	for i := range b.N {
		h := startTagged(b, tr, contid.ID(100+i), "i=0; while [ $i -lt 20 ]; do /bin/true & i=$((i+1)); done; wait; exec sleep "+helperLife)
		goQuiet(b, tr)
		c := collect(b, tr)
		h.release(b)
		isFork := func(e taskevent.Event) bool { return e.Kind == taskevent.KindFork && int(e.ParentTGID) == h.pid() }
		isTail := func(e taskevent.Event) bool {
			return e.Kind == taskevent.KindExec && int(e.TID) == h.pid() && e.Comm == "sleep"
		}
		c.wait(b, "the exec of sleep", func(evs []taskevent.Event) bool { return slices.ContainsFunc(evs, isTail) })
		c.stop()
		f, _ := c.lag(isFork)
		l, _ := c.lag(isTail)
		first += f
		tail += l
		_ = syscall.Kill(-h.pid(), syscall.SIGKILL)
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-ms")
	b.ReportMetric(float64(tail.Milliseconds())/float64(b.N), "tail-ms")
}
