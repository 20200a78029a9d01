package auditnl

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
	"golang.org/x/sys/unix"
)

// load is a benchmark's workload. It runs processes that generate audit
// events, calls own with each pid whose events (field is "pid" or "ppid")
// are the load's, and returns how many events it generated.
type load func(b *testing.B, own func(field string, pid int)) int

// storm measures the receive rate of a Primary client opened with cfg under a load: the load's
// records (other processes' records are received but not counted: the
// machine is shared) from its start until its last event arrived, per
// second; the kernel's lost counter and wait time deltas; and how many of
// the load's events never arrived.
func storm(b *testing.B, cfg Config, rule []string, run load) {
	setup(b)
	c, err := Open(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	audittest.Auditctl(b, rule...)

	var (
		owners  sync.Map // "pid=N" or "ppid=N" → struct{}
		records atomic.Uint64
		events  atomic.Uint64
		last    atomic.Int64 // unix nanos of the last counted record
		ours    = map[uint64]bool{}
		others  = map[uint16]int{} // record types of other processes' events, by the reader only
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return
			}
			st, body, err := m.Stamp()
			if err != nil {
				continue
			}
			if m.Type == unix.AUDIT_SYSCALL {
				for _, f := range []string{"pid", "ppid"} {
					if _, ok := owners.Load(f + "=" + field(body, f)); ok {
						ours[st.Serial] = true
						events.Add(1)
						break
					}
				}
			}
			if ours[st.Serial] {
				records.Add(1)
				last.Store(time.Now().UnixNano())
				if m.Type == unix.AUDIT_EOE {
					delete(ours, st.Serial)
				}
			} else {
				others[m.Type]++
			}
		}
	})
	time.Sleep(100 * time.Millisecond)
	before, err := c.Status()
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	var want int
	for range b.N {
		want += run(b, func(f string, pid int) { owners.Store(f+"="+strconv.Itoa(pid), struct{}{}) })
	}
	loadDone := time.Since(start)
	for deadline := time.Now().Add(30 * time.Second); int(events.Load()) < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the last event's records after its SYSCALL
	b.StopTimer()
	cancel()
	wg.Wait()
	after, err := c.Status()
	if err != nil {
		b.Fatal(err)
	}

	n, ev := records.Load(), events.Load()
	el := time.Unix(0, last.Load()).Sub(start).Seconds()
	b.ReportMetric(float64(n)/el, "records/s")
	b.ReportMetric(float64(ev)/el, "events/s")
	b.ReportMetric(float64(after.Lost-before.Lost), "lost")
	b.ReportMetric(float64(max(0, want-int(ev))), "missing")
	b.ReportMetric(float64(c.Stats().ENOBUFS), "enobufs")
	b.ReportMetric(float64(after.BacklogWaitTimeActual-before.BacklogWaitTimeActual), "wait-jiffies")
	b.Logf("%d records of %d/%d events in %.2fs (load %.2fs): %.0f records/s; kernel lost %d→%d; ENOBUFS %d; all received %d",
		n, ev, want, el, loadDone.Seconds(), float64(n)/el, before.Lost, after.Lost, c.Stats().ENOBUFS, c.Stats().Messages)
	b.Logf("other processes' records during the run, by type: %v", others)
	// The load's records can wait for the reader, so none may be missing.
	// The kernel's lost counter may still move: records allocated where
	// the kernel cannot sleep (GFP_ATOMIC: AUDIT_BPF, LSM, netfilter) are
	// dropped while the backlog is full, whoever produces them.
	if int(ev) < want {
		b.Errorf("%d of the load's %d events received", ev, want)
	}
}

// BenchmarkPrimaryExecStorm: a shell loop of /bin/true for 5 s under an
// execve rule (docs/kernel.md: the machine does at most ~1.5k exec/s under
// audit), received by a Primary client. The rate is bounded by the exec
// rate, not by the reader; nothing may be lost.
func BenchmarkPrimaryExecStorm(b *testing.B) {
	storm(b, Config{Enable: true}, []string{"-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "contid-bench"},
		func(b *testing.B, own func(string, int)) int {
			cmd := exec.Command("bash", "-c", `read; end=$((SECONDS+5)); n=0; while [ $SECONDS -lt $end ]; do /bin/true; n=$((n+1)); done; echo $n`)
			in, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			own("ppid", cmd.Process.Pid) // before it starts the loop
			in.Write([]byte("go\n"))
			if err := cmd.Wait(); err != nil {
				b.Fatalf("exec storm: %v", err)
			}
			n, err := strconv.Atoi(strings.TrimSpace(out.String()))
			if err != nil {
				b.Fatalf("exec storm output %q", out.String())
			}
			return n
		})
}

// BenchmarkPrimaryCeiling: two processes calling getppid in a loop for
// 5 s under a getppid rule: producers faster than the reader, so the
// kernel makes them wait and records/s is the reader's ceiling on this
// machine, reader and producers sharing its CPUs (docs/kernel.md: 250–300k
// records/s). Once with the backlog limit as found (64 at boot), once
// with 8192.
func BenchmarkPrimaryCeiling(b *testing.B) {
	for _, backlog := range []uint32{0, 8192} {
		b.Run("backlog="+map[bool]string{true: "found", false: strconv.Itoa(int(backlog))}[backlog == 0], func(b *testing.B) {
			storm(b, Config{Enable: true, BacklogLimit: backlog}, []string{"-a", "always,exit", "-F", "arch=b64", "-S", "getppid", "-k", "contid-bench"}, getppidStorm)
		})
	}
}

func getppidStorm(b *testing.B, own func(string, int)) int {
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSyscallStorm$")
		cmd.Env = append(os.Environ(), "CONTID_AUDITNL_STORM=5s")
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out := new(bytes.Buffer)
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		own("pid", cmd.Process.Pid)
		in.Close() // go
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var n int
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("syscall storm: %v", err)
		}
		k, err := strconv.Atoi(strings.Fields(outs[i].String() + " x")[0])
		if err != nil {
			b.Fatalf("syscall storm output %q", outs[i].String())
		}
		n += k
	}
	return n
}

// TestHelperSyscallStorm is not a test: it is BenchmarkPrimaryCeiling's
// load. When stdin closes it calls getppid in a loop for
// $CONTID_AUDITNL_STORM and prints how many times.
func TestHelperSyscallStorm(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("CONTID_AUDITNL_STORM"))
	if err != nil {
		return // an entry point, not a test: helper process for BenchmarkPrimaryCeiling
	}
	var one [1]byte
	os.Stdin.Read(one[:])
	var n int
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 1000 {
			unix.Getppid()
		}
		n += 1000
	}
	os.Stdout.WriteString(strconv.Itoa(n) + "\n")
	os.Exit(0)
}
