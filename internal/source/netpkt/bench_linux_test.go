package netpkt

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BenchmarkUDPVeth measures what the attribution costs per packet that no
// audit rule matches: 64-byte UDP datagrams from one namespace to another
// over a veth pair, each namespace with an iptables AUDIT rule on INPUT
// for ICMP echo requests (so the datagrams cross a hook with an audit rule
// but are not logged), read by a receiver.
//
// Each benchmark iteration is a round: every mode in turn (rotated each
// round so that drift on a shared machine hits them alike), each sending
// a chunk of datagrams from one thread pinned to one CPU. The cost is the
// thread's CPU time per datagram: the receiving namespace's hooks run in
// the sender's softirq on that CPU, and this kernel charges softirq time
// to the task it interrupted (no CONFIG_IRQ_TIME_ACCOUNTING). Reported:
// the median per mode (ns/pkt) and on/off, the ratio of the medians.
//
// Modes: off (nothing attached), on (the namespaces watched as the daemon
// does: programs only at hooks with audit rules), and for the split,
// all-hooks (every hook of both families, as before rules were read),
// global-only (the kernel-wide programs without netfilter programs),
// no-softirq (on without the softirq entry and exit programs: what
// telling softirq runs apart inside the programs would save) and free-only
// (the kmem_cache_free program alone: the floor of any design that learns
// of a record from that tracepoint).
//
//	go test -run X -bench UDPVeth -benchtime 40x ./internal/source/netpkt
func BenchmarkUDPVeth(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root")
	}
	_, _, fa, fb := auditedVeth(b, "contid-pkbench-", "pkbv", "10.252.0")

	// The receiver reads every datagram on a thread of its own on another
	// CPU (its time is not counted): delivered packets, as most are, not
	// drops (a drop also runs the kfree_skb program).
	dst := &unix.SockaddrInet4{Port: 9999, Addr: [4]byte{10, 252, 0, 2}}
	rcv := udpIn(b, fb, unix.Bind, dst)
	defer unix.Close(rcv)
	received := make(chan struct{})
	go func() {
		defer close(received)
		runtime.LockOSThread()
		var other unix.CPUSet
		other.Set(0)
		unix.SchedSetaffinity(0, &other)
		buf := make([]byte, 256)
		for {
			if n, err := unix.Read(rcv, buf); n <= 0 && err != unix.EINTR {
				return // shut down
			}
		}
	}()
	defer func() { unix.Shutdown(rcv, unix.SHUT_RD); <-received }()
	snd := udpIn(b, fa, unix.Connect, dst)
	defer unix.Close(snd)

	p, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	watchBoth := func(h Hooks) func() {
		var ws []*Watch
		for _, f := range []*os.File{fa, fb} {
			w, err := p.Watch(f)
			switch {
			case err == nil && h != 0:
				err = w.watchHooks(h)
			case err == nil:
				err = w.Recheck()
			}
			if err != nil {
				b.Fatal(err)
			}
			ws = append(ws, w)
		}
		return func() {
			for _, w := range ws {
				w.Close()
			}
		}
	}
	modes := []struct {
		name string
		set  func() (undo func())
	}{
		{"off", func() func() { return func() {} }},
		{"on", func() func() { return watchBoth(0) }},
		{"all-hooks", func() func() { return watchBoth(AllHooks) }},
		{"global-only", func() func() {
			if err := p.attachGlobal(); err != nil {
				b.Fatal(err)
			}
			return p.detachGlobal
		}},
		{"no-softirq", func() func() {
			undo := watchBoth(0)
			p.mu.Lock()
			p.links = dropLinks(p.links, p.objs.SoftirqIn, p.objs.SoftirqOut)
			p.mu.Unlock()
			return undo
		}},
		{"free-only", func() func() {
			if err := p.attachGlobal(); err != nil {
				b.Fatal(err)
			}
			p.mu.Lock()
			p.links = dropLinks(p.links, p.objs.SoftirqIn, p.objs.SoftirqOut, p.objs.SkbDrop)
			p.mu.Unlock()
			return p.detachGlobal
		}},
	}

	const chunk = 4000
	payload := make([]byte, 64)
	cpu := runtime.NumCPU() - 1 // the receiver reads on CPU 0
	send := func(n int) (cpuNs, wallNs int64) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var old, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			b.Fatal(err)
		}
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			b.Fatal(err)
		}
		defer unix.SchedSetaffinity(0, &old)
		var t0, t1 unix.Timespec
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
		w0 := time.Now()
		for i := 0; i < n; i++ {
			if _, err := unix.Write(snd, payload); err != nil {
				b.Fatal(err)
			}
		}
		wall := time.Since(w0)
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
		return t1.Nano() - t0.Nano(), wall.Nanoseconds()
	}
	per := make([][]float64, len(modes))
	wall := make([][]float64, len(modes))
	for r := 0; r < b.N; r++ {
		for k := range modes {
			m := (r + k) % len(modes)
			undo := modes[m].set()
			send(chunk / 10) // warm: caches, the receiver's full buffer
			c, w := send(chunk)
			undo()
			per[m] = append(per[m], float64(c)/chunk)
			wall[m] = append(wall[m], float64(w)/chunk)
		}
	}
	med := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	off := med(per[0])
	summary := ""
	for m, mode := range modes {
		c := med(per[m])
		b.ReportMetric(c, mode.name+"-cpu-ns/pkt")
		if m > 0 {
			b.ReportMetric(c/off, mode.name+"/off")
		}
		summary += fmt.Sprintf(" %s %.0f ns/pkt cpu (%.0f wall, ×%.3f)", mode.name, c, med(wall[m]), c/off)
	}
	// BPF run-time statistics make every program run read the clock twice.
	stats, _ := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	b.Logf("rounds %d, %d datagrams each, CPU %d, kernel.bpf_stats_enabled=%s, medians:%s",
		b.N, chunk, cpu, strings.TrimSpace(string(stats)), summary)
}

// dropLinks closes the links of these programs and returns the others.
func dropLinks(ls []link.Link, progs ...*ebpf.Program) []link.Link {
	var kept []link.Link
	for _, l := range ls {
		info, err := l.Info()
		drop := false
		for _, pr := range progs {
			if pi, perr := pr.Info(); err == nil && perr == nil {
				if id, ok := pi.ID(); ok && id == info.Program {
					drop = true
				}
			}
		}
		if drop {
			l.Close()
		} else {
			kept = append(kept, l)
		}
	}
	return kept
}

func inNetns(b *testing.B, f *os.File, fn func() (int, error)) int {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		b.Fatal(err)
	}
	defer self.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		b.Fatal(err)
	}
	v, err := fn()
	if err2 := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err2 != nil {
		panic(err2) // the thread is in the wrong namespace: stop here
	}
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// udpIn opens a UDP socket in namespace ns and binds or connects it (op)
// to dst.
func udpIn(b *testing.B, ns *os.File, op func(int, unix.Sockaddr) error, dst unix.Sockaddr) int {
	return inNetns(b, ns, func() (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = op(fd, dst)
		}
		return fd, err
	})
}
