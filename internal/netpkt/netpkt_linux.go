package netpkt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
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

// Probe is the loaded pairing programs.
type Probe struct {
	objs    netpktObjects
	links   []link.Link // the kernel-wide programs, while watching
	watches int
	rd      *ringbuf.Reader
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
// kernel-wide programs (on kmem_cache_free and kfree_skb, which fire
// machine-wide) are attached while at least one namespace is watched.
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

var hooks = []link.NetfilterInetHook{
	link.NetfilterInetPreRouting, link.NetfilterInetLocalIn, link.NetfilterInetForward,
	link.NetfilterInetLocalOut, link.NetfilterInetPostRouting,
}

// Watch attaches the traversal programs in the network namespace netns (an
// open /proc/PID/ns/net or /run/netns file). Closing the result detaches
// them.
func (p *Probe) Watch(netns *os.File) (io.Closer, error) {
	ls, err := attachIn(netns, func() ([]link.Link, error) {
		var out []link.Link
		for _, pf := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
			for _, h := range hooks {
				for _, a := range []struct {
					prog *ebpf.Program
					prio int32
				}{{p.objs.NfOpen, prioFirst}, {p.objs.NfClose, prioLast}} {
					l, err := link.AttachNetfilter(link.NetfilterOptions{Program: a.prog, ProtocolFamily: pf, Hook: h, Priority: a.prio})
					if err != nil {
						return out, fmt.Errorf("attach family %d hook %d priority %d: %w", pf, h, a.prio, err)
					}
					out = append(out, l)
				}
			}
		}
		return out, nil
	})
	w := &watch{p: p, links: ls}
	if err == nil {
		err = p.attachGlobal()
	}
	if err != nil {
		closeAll(ls)
		return nil, fmt.Errorf("netpkt: %w", err)
	}
	p.watches++
	return w, nil
}

type watch struct {
	p     *Probe
	links []link.Link
}

func (w *watch) Close() error {
	if w.links == nil {
		return nil
	}
	err := closeAll(w.links)
	w.links = nil
	if w.p.watches--; w.p.watches == 0 {
		w.p.detachGlobal()
	}
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
	p.detachGlobal()
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
