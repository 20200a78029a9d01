package procconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// DefaultRcvBuf is the receive buffer size when Config.RcvBuf is 0. The
// kernel doubles it for its bookkeeping and charges each queued event
// about 830 bytes (a socket buffer, for 76 bytes of message): measured, 16
// MiB held 40,329 events unread before the first overflow. With it nothing
// was lost at 13.5k forks/s (docs/kernel.md) nor in 80,000 forks at ~9,500/s
// read with /proc lookups; the kernel's default (212992) lost hundreds.
const DefaultRcvBuf = 16 << 20

// ackTimeout bounds the wait for the kernel's answer to a subscription. The
// kernel handles the request inside sendmsg, so the answer is normally
// queued before send returns; only a kernel that ignores the request (the
// filter form before 6.6) makes Open wait this long.
const ackTimeout = 500 * time.Millisecond

// recvBufLen holds any datagram the connector sends (one message of 76
// bytes each); a longer one is reported truncated.
const recvBufLen = 8 << 10

// Config configures Open. The zero value means the defaults.
type Config struct {
	// RcvBuf is the socket receive buffer in bytes (default DefaultRcvBuf).
	// Open sets it with SO_RCVBUFFORCE, which needs CAP_NET_ADMIN, and falls
	// back to SO_RCVBUF, capped by net.core.rmem_max, with a warning.
	RcvBuf int
	// AllEvents subscribes without the per-listener filter of Linux 6.6+.
	// By default Open asks the kernel for fork, exec and exit events only,
	// which keeps the events contid ignores out of the receive buffer. But
	// the kernel numbers every event it sends, filtered or not, so with the
	// filter the numbering has holes that are not loss, and
	// Stats.SeqGaps is not counted. Without it (AllEvents, or a kernel
	// without the filter) gaps reveal how many events were lost, including
	// any the kernel failed to allocate; ENOBUFS (Stats.Overflows) reports an
	// overflowing receive buffer either way.
	AllEvents bool
	// NoProcfs leaves out what Read looks up in /proc: StartBoottime, Comm,
	// UID, AUID and Ses stay unset (see the package doc).
	NoProcfs bool
}

// Stats counts what the connection received, cumulative since Open.
type Stats struct {
	Received  uint64 // datagrams received
	Forks     uint64 // fork events decoded
	Execs     uint64 // exec events decoded
	Exits     uint64 // exit events decoded
	Ignored   uint64 // well-formed events of types contid does not use
	Acks      uint64 // acknowledgements of subscriptions (this and other listeners')
	Malformed uint64 // datagrams that did not (entirely) decode, or were truncated
	Foreign   uint64 // datagrams not sent by the kernel, dropped unread
	// Overflows counts ENOBUFS from recv: the receive buffer overflowed and
	// the kernel dropped events (how many it does not say; see SeqSkipped).
	Overflows uint64
	// SeqGaps counts breaks in a CPU's message numbering and SeqSkipped the
	// numbers skipped: with Filtered false, events lost. Not counted while
	// Filtered.
	SeqGaps    uint64
	SeqSkipped uint64
	// Filtered reports that the kernel sends only fork, exec and exit
	// events (Linux 6.6+, unless Config.AllEvents).
	Filtered bool
	// RcvBuf is the receive buffer the kernel granted (SO_RCVBUF as read
	// back: twice the requested size, for its bookkeeping).
	RcvBuf int
}

type counters struct {
	received, forks, execs, exits, ignored, acks, malformed, foreign,
	overflows, seqGaps, seqSkipped atomic.Uint64
}

// Conn is a subscription to the process events connector. Read must be
// called from one goroutine at a time. TryRead must not be called while a
// Read is running: it waits for Read to return. Stats is safe for concurrent
// use with everything. Close may be called concurrently with Read, which it
// interrupts, and any number of times.
type Conn struct {
	log      *slog.Logger
	f        *os.File
	rc       syscall.RawConn
	filtered bool
	rcvBuf   int
	cnt      counters

	readMu  sync.Mutex // everything below, until closed
	buf     []byte
	msgs    []message
	queue   []taskevent.Event
	head    int
	seq     seqTracker
	proc    *procReader // nil with Config.NoProcfs
	waitAck bool        // subscribing: look for the acknowledgement of ack
	ack     uint32
	gotAck  bool
	ackErr  uint32
	warned  time.Time // the last ENOBUFS warning

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open subscribes to the process events connector (NETLINK_CONNECTOR, group
// CN_IDX_PROC). The process must be in the initial user and pid namespaces:
// the kernel ignores subscriptions from anywhere else, which Open reports as
// an error once its wait for the acknowledgement times out. Older kernels
// also require CAP_NET_ADMIN to listen (6.18 does not: measured as uid
// 65534); the default receive buffer needs it regardless. Logging is
// optional (nil).
func Open(cfg Config, log *slog.Logger) (*Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	size := cfg.RcvBuf
	if size <= 0 {
		size = DefaultRcvBuf
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("procconn: socket: %w", err)
	}
	granted, err := setRcvBuf(fd, size, log)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc})
		if err != nil {
			err = fmt.Errorf("procconn: bind: %w", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking fd makes os.NewFile register it with the runtime
	// poller: Read then blocks in the poller, and a read deadline or Close
	// wakes it.
	f := os.NewFile(uintptr(fd), "procconn")
	c := &Conn{
		log:    log,
		f:      f,
		rcvBuf: granted,
		buf:    make([]byte, recvBufLen),
	}
	if c.rc, err = f.SyscallConn(); err == nil {
		err = f.SetReadDeadline(time.Time{}) // fails unless pollable
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("procconn: poller: %w", err)
	}
	if !cfg.NoProcfs {
		c.proc = newProcReader(procfs.Host)
	}
	c.readMu.Lock()
	err = c.subscribe(!cfg.AllEvents)
	c.readMu.Unlock()
	if err != nil {
		f.Close()
		return nil, err
	}
	log.Debug("proc connector subscribed", "filtered", c.filtered, "rcvbuf", granted)
	return c, nil
}

// setRcvBuf sets the receive buffer and returns what the kernel granted.
func setRcvBuf(fd, size int, log *slog.Logger) (int, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); err != nil {
		// Without CAP_NET_ADMIN: the kernel caps SO_RCVBUF at rmem_max.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return 0, fmt.Errorf("procconn: set receive buffer: %w", err)
		}
		got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		log.Warn("proc connector: SO_RCVBUFFORCE refused, receive buffer capped by net.core.rmem_max: events may be lost under load",
			"err", err, "requested", size, "granted", got)
		return got, nil
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, fmt.Errorf("procconn: read back receive buffer: %w", err)
	}
	return got, nil
}

// subscribe sends PROC_CN_MCAST_LISTEN. With filter it first asks, in the
// 6.6+ form, for every event: a kernel that understands the form
// acknowledges it (an older one ignores it silently), and the
// acknowledgement, an event of type "none", passes only that filter. Then it
// narrows the filter to fork, exec and exit, an update that cannot fail and
// whose acknowledgement the new filter drops.
func (c *Conn) subscribe(filter bool) error {
	if filter {
		ok, err := c.request(mcastListen, whatAll)
		if err != nil {
			return err
		}
		if ok {
			if err := c.send(mcastListen, whatWanted, 0); err != nil {
				return err
			}
			c.filtered = true
			return nil
		}
		c.log.Info("proc connector: the kernel has no per-listener event filter (before Linux 6.6): filtering in user space")
	}
	ok, err := c.request(mcastListen, 0)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("procconn: subscribe: the kernel did not acknowledge (is the process outside the initial user or pid namespace?)")
	}
	return nil
}

// request sends a control operation and waits for its acknowledgement,
// decoding whatever else arrives meanwhile. An overflow while waiting may
// have dropped the acknowledgement, so the request is repeated then.
func (c *Conn) request(op, filter uint32) (acked bool, err error) {
	defer func() {
		c.waitAck = false
		c.f.SetReadDeadline(time.Time{})
	}()
	for try := 0; try < 3; try++ {
		c.waitAck, c.gotAck, c.ack = true, false, rand.Uint32()
		if err := c.send(op, filter, c.ack); err != nil {
			return false, err
		}
		if err := c.f.SetReadDeadline(time.Now().Add(ackTimeout)); err != nil {
			return false, fmt.Errorf("procconn: subscribe: %w", err)
		}
		nobufs := c.cnt.overflows.Load()
		for !c.gotAck {
			_, err := c.receive(true)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil && !errors.Is(err, taskevent.ErrMalformed) {
				return false, fmt.Errorf("procconn: subscribe: %w", err)
			}
		}
		if c.gotAck {
			if c.ackErr != 0 {
				return false, fmt.Errorf("procconn: subscribe: %w", syscall.Errno(c.ackErr))
			}
			return true, nil
		}
		if c.cnt.overflows.Load() == nobufs {
			return false, nil
		}
	}
	return false, nil
}

// send sends a control operation to the connector (unicast to the kernel).
func (c *Conn) send(op, filter, ack uint32) error {
	b := appendRequest(nil, op, filter, ack)
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("procconn: send: %w", err)
	}
	return nil
}

// Read returns the next fork, exec or exit event, blocking until one
// arrives, ctx is done (ctx.Err() is returned) or the connection is closed
// (an error wrapping os.ErrClosed). A datagram that does not decode gives an
// error wrapping taskevent.ErrMalformed; reading may go on after it. An
// overflow of the receive buffer is counted (Stats.Overflows) and reading
// goes on. Events of one task arrive in the order they happened;
// events from different CPUs may be reordered by microseconds (compare
// Time).
func (c *Conn) Read(ctx context.Context) (taskevent.Event, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.closed.Load() {
			return taskevent.Event{}, errClosed
		}
		if ev, ok := c.pop(); ok {
			return ev, nil
		}
		if err := ctx.Err(); err != nil {
			return taskevent.Event{}, err
		}
		if err := c.receiveCtx(ctx); err != nil {
			return taskevent.Event{}, err
		}
	}
}

// TryRead returns the next event if one is queued or already received by
// the socket, without blocking; ok is false when there is none. The kernel
// queues an event on the socket before the task that caused it goes on, so
// with Read paused, calling TryRead until ok is false returns every event
// that happened before the call (but for lost ones, see Stats). Call it only
// while Read is not running.
func (c *Conn) TryRead() (ev taskevent.Event, ok bool, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		if c.closed.Load() {
			return taskevent.Event{}, false, errClosed
		}
		if ev, ok := c.pop(); ok {
			return ev, true, nil
		}
		got, err := c.receive(false)
		if err != nil {
			return taskevent.Event{}, false, err
		}
		if !got {
			return taskevent.Event{}, false, nil
		}
	}
}

var errClosed = fmt.Errorf("procconn: read: %w", os.ErrClosed)

func (c *Conn) pop() (taskevent.Event, bool) {
	if c.head == len(c.queue) {
		return taskevent.Event{}, false
	}
	ev := c.queue[c.head]
	c.head++
	if c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
	}
	return ev, true
}

// receiveCtx is receive(true) that ends when ctx is done: a read deadline in
// the past wakes the poller.
func (c *Conn) receiveCtx(ctx context.Context) error {
	if ctx.Done() == nil {
		_, err := c.receive(true)
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	_, err := c.receive(true)
	if !stop() {
		<-fired
		c.f.SetReadDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return nil
	}
	return err
}

// receive takes one datagram from the socket and decodes it into the queue.
// got is false only when block is false and the socket is empty.
func (c *Conn) receive(block bool) (got bool, err error) {
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	err = c.rc.Read(func(fd uintptr) bool {
		for {
			// MSG_TRUNC: netlink returns the datagram's real length.
			n, from, rerr = unix.Recvfrom(int(fd), c.buf, unix.MSG_TRUNC)
			if rerr != unix.EINTR {
				return !block || rerr != unix.EAGAIN
			}
		}
	})
	switch {
	case err != nil && c.closed.Load():
		return false, errClosed
	case err != nil:
		return false, err // a deadline; the callers wrap or handle it
	case rerr == unix.EAGAIN:
		return false, nil
	case rerr == unix.ENOBUFS:
		c.overflowed()
		return true, nil
	case rerr != nil:
		return false, fmt.Errorf("procconn: receive: %w", rerr)
	}
	c.cnt.received.Add(1)
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		c.cnt.foreign.Add(1)
		return true, nil
	}
	if n > len(c.buf) {
		c.cnt.malformed.Add(1)
		return true, fmt.Errorf("procconn: %w: datagram of %d bytes, more than %d", taskevent.ErrMalformed, n, len(c.buf))
	}
	return true, c.process(c.buf[:n])
}

// overflowed counts an ENOBUFS and warns at most every ten seconds.
func (c *Conn) overflowed() {
	n := c.cnt.overflows.Add(1)
	if now := time.Now(); now.Sub(c.warned) >= 10*time.Second {
		c.warned = now
		c.log.Warn("proc connector: receive buffer overflowed, events lost", "overflows", n, "rcvbuf", c.rcvBuf)
	}
}

// process decodes one datagram: it counts every message, queues the events,
// and notes the acknowledgement request waits for.
func (c *Conn) process(b []byte) error {
	msgs, err := decode(b, c.msgs[:0])
	c.msgs = msgs
	for i := range msgs {
		m := &msgs[i]
		if !c.filtered {
			if k := c.seq.observe(m.cpu, m.seq); k > 0 {
				c.cnt.seqGaps.Add(1)
				c.cnt.seqSkipped.Add(uint64(k))
			}
		}
		switch m.what {
		case whatNone:
			c.cnt.acks.Add(1)
			if c.waitAck && m.ack == c.ack+1 {
				c.gotAck, c.ackErr = true, m.ackErr
			}
			continue
		case whatFork:
			c.cnt.forks.Add(1)
		case whatExec:
			c.cnt.execs.Add(1)
		case whatExit:
			c.cnt.exits.Add(1)
		default:
			c.cnt.ignored.Add(1)
			continue
		}
		ev := m.ev
		if c.proc != nil {
			c.proc.fill(&ev)
		}
		c.queue = append(c.queue, ev)
	}
	if err != nil {
		c.cnt.malformed.Add(1)
	}
	return err
}

// Stats returns the counters.
func (c *Conn) Stats() Stats {
	return Stats{
		Received:   c.cnt.received.Load(),
		Forks:      c.cnt.forks.Load(),
		Execs:      c.cnt.execs.Load(),
		Exits:      c.cnt.exits.Load(),
		Ignored:    c.cnt.ignored.Load(),
		Acks:       c.cnt.acks.Load(),
		Malformed:  c.cnt.malformed.Load(),
		Foreign:    c.cnt.foreign.Load(),
		Overflows:  c.cnt.overflows.Load(),
		SeqGaps:    c.cnt.seqGaps.Load(),
		SeqSkipped: c.cnt.seqSkipped.Load(),
		Filtered:   c.filtered,
		RcvBuf:     c.rcvBuf,
	}
}

// Close unsubscribes (PROC_CN_MCAST_IGNORE: the kernel counts listeners and
// skips building events while there are none) and closes the socket. A
// blocked Read returns an error wrapping os.ErrClosed.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		serr := c.send(mcastIgnore, 0, 0)
		if err := c.f.Close(); err != nil {
			serr = errors.Join(serr, fmt.Errorf("procconn: close: %w", err))
		}
		c.closeErr = serr
	})
	return c.closeErr
}
