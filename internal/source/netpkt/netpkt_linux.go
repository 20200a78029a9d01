package netpkt

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// producers are the functions whose kmem_cache_free of an audit buffer is
// a packet record's: the free is a tail call from audit_log_end, so the
// call site lies in the rule's caller (measured on 6.18: audit_tg+0x14 for
// the AUDIT target, nft_do_chain+0x153 for nftables).
var producers = [2]string{"audit_tg", "nft_do_chain"}

// Probe is the loaded pairing programs. Its watches may be rechecked
// from other goroutines than the one reading pairs.
type Probe struct {
	objs   netpktObjects
	rd     *ringbuf.Reader
	mu     sync.Mutex  // guards links and active
	links  []link.Link // the kernel-wide programs, while a watch has hooks
	active int         // watches with hooks
}

func (p *Probe) attachGlobal() error {
	if len(p.links) > 0 {
		return nil
	}
	for _, prog := range []*ebpf.Program{p.objs.SoftirqIn, p.objs.SoftirqOut, p.objs.SkbDrop, p.objs.FreeAb} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			p.detachGlobal()
			return fmt.Errorf("attach %s: %w", prog, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

func (p *Probe) detachGlobal() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}

// Load loads the programs; nothing runs until a namespace is watched. The
// kernel-wide programs (on kmem_cache_free, kfree_skb and softirq entry
// and exit, which fire machine-wide) are attached while a watched
// namespace has audit packet rules.
func Load() (*Probe, error) {
	ranges, err := symbolRanges("/proc/kallsyms", producers[:])
	if err != nil {
		return nil, fmt.Errorf("netpkt: %w", err)
	}
	spec, err := loadNetpkt()
	if err != nil {
		return nil, fmt.Errorf("netpkt: spec: %w", err)
	}
	for name, v := range map[string]uint64{
		"xt_lo": ranges[0][0], "xt_hi": ranges[0][1],
		"nft_lo": ranges[1][0], "nft_hi": ranges[1][1],
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("netpkt: %s: %w", name, err)
		}
	}
	p := &Probe{}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("netpkt: load: %w", err)
	}
	if p.rd, err = ringbuf.NewReader(p.objs.Pairs); err != nil {
		p.Close()
		return nil, fmt.Errorf("netpkt: ring buffer: %w", err)
	}
	return p, nil
}

// Netfilter priorities of the open and close programs: before and after
// every table and chain (NF_IP_PRI_FIRST and _LAST are reserved).
const (
	prioFirst = -(1 << 31) + 1
	prioLast  = (1 << 31) - 2
)

// Watch returns a watch of the network namespace netns (an open
// /proc/PID/ns/net or /run/netns file, which it keeps a duplicate of). It
// runs nothing until Recheck reads where the namespace has audit packet
// rules and attaches the traversal programs there. Close detaches them.
func (p *Probe) Watch(netns *os.File) (*Watch, error) {
	fd, err := unix.FcntlInt(netns.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netpkt: dup: %w", err)
	}
	return &Watch{p: p, netns: os.NewFile(uintptr(fd), netns.Name())}, nil
}

// ErrClosed is what Recheck returns after Close.
var ErrClosed = errors.New("netpkt: watch closed")

// Watch is one watched namespace. Its methods may be called from several
// goroutines: reading a namespace's rules takes as long as the ruleset,
// which the namespace's owner writes, so callers can recheck away from
// their own work.
type Watch struct {
	p        *Probe
	mu       sync.Mutex
	netns    *os.File                 // nil once closed
	links    [2 * nHooks][2]link.Link // open, close per hook; nil: not attached
	hooks    Hooks
	rulesErr error
}

// Hooks is where the programs run in the namespace.
func (w *Watch) Hooks() Hooks {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hooks
}

// RulesErr is why the last Recheck could not read the namespace's rules
// (the programs then run at every hook), or nil.
func (w *Watch) RulesErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rulesErr
}

// Recheck reads the namespace's audit packet rules again and attaches or
// detaches the programs to match: after a rule change, a record logged at
// a hook not yet watched pairs with no namespace, never a wrong one. An
// unreadable ruleset means every hook (the error is returned and kept in
// RulesErr); an attach failure leaves the hooks attached so far.
func (w *Watch) Recheck() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.netns == nil {
		return ErrClosed
	}
	var want Hooks
	var rerr error
	_, err := attachIn(w.netns, func() ([]link.Link, error) {
		want, rerr = rulesetHooks()
		return nil, w.set(want)
	})
	w.rulesErr = rerr
	if err == nil && rerr != nil {
		err = fmt.Errorf("netpkt: rules of netns %s: %w (watching every hook)", w.netns.Name(), rerr)
	}
	return err
}

// watchHooks sets the hooks directly (benchmarks and tests).
func (w *Watch) watchHooks(h Hooks) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := attachIn(w.netns, func() ([]link.Link, error) { return nil, w.set(h) })
	return err
}

// set attaches and detaches to run at exactly the hooks h; on a thread in
// the namespace, w.mu held.
//
// Order matters for entries never popped: the kernel-wide programs (which
// drop what a softirq run left) are attached before the first traversal
// program and detached after the last, and at each hook the closing
// program is attached before the opening one (a close without its open
// pops nothing) and detached after it.
func (w *Watch) set(h Hooks) error {
	was := w.hooks != 0
	if h != 0 && !was {
		if err := w.p.use(); err != nil {
			return fmt.Errorf("netpkt: %w", err) // without them nothing pairs
		}
	}
	var err error
	for i := 0; i < 2*nHooks && err == nil; i++ {
		bit := Hooks(1) << i
		switch {
		case h&bit != 0 && w.hooks&bit == 0:
			pf, hk := link.NetfilterProtoIPv4, link.NetfilterInetHook(i)
			if i >= nHooks {
				pf, hk = link.NetfilterProtoIPv6, link.NetfilterInetHook(i-nHooks)
			}
			for _, a := range []struct {
				j    int
				prog *ebpf.Program
				prio int32
			}{{1, w.p.objs.NfClose, prioLast}, {0, w.p.objs.NfOpen, prioFirst}} {
				l, lerr := link.AttachNetfilter(link.NetfilterOptions{Program: a.prog, ProtocolFamily: pf, Hook: hk, Priority: a.prio})
				if lerr != nil {
					err = fmt.Errorf("netpkt: attach %s priority %d: %w", bit, a.prio, lerr)
					break
				}
				w.links[i][a.j] = l
			}
			if w.links[i][0] != nil && w.links[i][1] != nil {
				w.hooks |= bit
			} else {
				w.detach(i)
			}
		case h&bit == 0 && w.hooks&bit != 0:
			w.detach(i)
			w.hooks &^= bit
		}
	}
	if w.hooks == 0 && (was || h != 0) {
		w.p.unuse()
	}
	return err
}

// use and unuse count the watches with hooks: the kernel-wide programs
// are attached while there is one.
func (p *Probe) use() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.attachGlobal(); err != nil {
		return err
	}
	p.active++
	return nil
}

func (p *Probe) unuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active--; p.active == 0 {
		p.detachGlobal()
	}
}

func (w *Watch) detach(i int) {
	for j, l := range w.links[i] {
		if l != nil {
			l.Close()
			w.links[i][j] = nil
		}
	}
}

// Close detaches the programs from the namespace.
func (w *Watch) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.netns == nil {
		return nil
	}
	for i := range w.links {
		w.detach(i)
	}
	if w.hooks != 0 {
		w.hooks = 0
		w.p.unuse()
	}
	err := w.netns.Close()
	w.netns = nil
	return err
}

func closeAll(ls []link.Link) error {
	var errs []error
	for _, l := range ls {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// attachIn runs attach on a thread of its own moved into netns: a
// netfilter link attaches in the namespace of the task that creates it.
// Should the thread fail to come back, it ends with its goroutine and no
// caller's thread is left in the wrong namespace.
func attachIn(netns *os.File, attach func() ([]link.Link, error)) ([]link.Link, error) {
	type result struct {
		ls  []link.Link
		err error
	}
	done := make(chan result)
	go func() {
		ls, err := attachLocked(netns, attach)
		done <- result{ls, err}
	}()
	r := <-done
	return r.ls, r.err
}

func attachLocked(netns *os.File, attach func() ([]link.Link, error)) ([]link.Link, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns: %w", err)
	}
	ls, err := attach()
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
		// The thread stays locked and in the wrong namespace; the runtime
		// ends it when this goroutine returns.
		return ls, errors.Join(err, fmt.Errorf("setns back: %w", rerr))
	}
	runtime.UnlockOSThread()
	return ls, err
}

// Read blocks until the next pair; it returns ringbuf.ErrClosed (wrapped)
// after Close.
func (p *Probe) Read() (Pair, error) {
	r, err := p.rd.Read()
	if err != nil {
		return Pair{}, fmt.Errorf("netpkt: read: %w", err)
	}
	return decode(r.RawSample)
}

// Counters returns the stack overflows (traversals that never closed) and
// the pairs lost to a full ring buffer.
func (p *Probe) Counters() (overflow, ringFull uint64, err error) {
	sum := func(k uint32) (uint64, error) {
		var vs []uint64
		if err := p.objs.Counters.Lookup(k, &vs); err != nil {
			return 0, err
		}
		var s uint64
		for _, v := range vs {
			s += v
		}
		return s, nil
	}
	if overflow, err = sum(0); err == nil {
		ringFull, err = sum(1)
	}
	if err != nil {
		err = fmt.Errorf("netpkt: counters: %w", err)
	}
	return
}

// Close unloads the programs; Watch handles must be closed first (their
// links keep the programs attached).
func (p *Probe) Close() error {
	var errs []error
	if p.rd != nil {
		errs = append(errs, p.rd.Close())
	}
	p.mu.Lock()
	p.detachGlobal()
	p.mu.Unlock()
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// symbolRanges returns [start, end) of each named text symbol of a
// kallsyms file: end is the next higher symbol's address.
func symbolRanges(path string, names []string) ([][2]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([][2]uint64, len(names))
	sc := bufio.NewScanner(f)
	var addrs []uint64
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fs[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		addrs = append(addrs, a)
		if t := fs[1]; t != "t" && t != "T" {
			continue
		}
		for i, n := range names {
			if fs[2] == n && out[i][0] == 0 {
				out[i][0] = a
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, n := range names {
		start := out[i][0]
		if start == 0 {
			return nil, fmt.Errorf("symbol %s not in %s (addresses hidden, or not built in)", n, path)
		}
		end := ^uint64(0)
		for _, a := range addrs {
			if a > start && a < end {
				end = a
			}
		}
		out[i][1] = end
	}
	return out, nil
}

// Drain hands every pair waiting in the ring buffer to f, without blocking.
// It must not run concurrently with Read.
func (p *Probe) Drain(f func(Pair)) error {
	p.rd.SetDeadline(time.Now())
	for {
		r, err := p.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("netpkt: read: %w", err)
		}
		pr, err := decode(r.RawSample)
		if err != nil {
			return err
		}
		f(pr)
	}
}
