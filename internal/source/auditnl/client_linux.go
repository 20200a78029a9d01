package auditnl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/procfs"
)

// Mode says how a Client gets the kernel's records (spec §5.3).
type Mode int

const (
	// Primary: the Client registers as the kernel's audit daemon and
	// receives records by unicast. While it keeps up, the kernel makes
	// producers wait (backlog_wait_time) rather than lose records.
	Primary Mode = iota
	// Listener: the Client joins the read-only multicast group
	// AUDIT_NLGRP_READLOG (CAP_AUDIT_READ) beside whatever daemon is
	// registered. The kernel drops multicast copies silently when the
	// socket is full; that shows only as ENOBUFS counts and serial gaps.
	Listener
)

func (m Mode) String() string {
	switch m {
	case Primary:
		return "primary"
	case Listener:
		return "listener"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// DefaultRcvBuf is the receive buffer asked for when Config.RcvBuf is 0.
const DefaultRcvBuf = 16 << 20

// Config configures Open. The zero value is a Primary client that
// refuses to displace a registered daemon and changes no audit setting.
type Config struct {
	Mode Mode
	// Takeover (Primary): if another live process is the registered audit
	// daemon, send it SIGTERM, wait up to 5 s for it to let go, and
	// register. Without it Open refuses with a *RegisteredError.
	Takeover bool
	// BacklogLimit (Primary), if not 0, is set while the Client is open.
	BacklogLimit uint32
	// BacklogWaitTime (Primary, jiffies), if not 0, is set while open.
	BacklogWaitTime uint32
	// RcvBuf is the socket receive buffer in bytes; 0 means
	// DefaultRcvBuf. SO_RCVBUFFORCE is tried first, then SO_RCVBUF
	// (capped by net.core.rmem_max).
	RcvBuf int
	// Enable (Primary) sets enabled=1 while open if audit was off.
	Enable bool
	// Adopt (Primary), if set, is called once Open may become the daemon
	// (no live daemon is registered, or the one taken over has exited)
	// and before it changes anything, with the status found. It returns
	// the settings Close puts back: those found, or those a crashed
	// predecessor recorded before it changed them. A setting the result
	// says was different is put back at Close even if Open does not change
	// it now. An error ends Open with nothing changed.
	Adopt func(found Status) (Status, error)
}

// Message is one audit record as the kernel sent it.
type Message struct {
	Type uint16 // record type: AUDIT_SYSCALL (1300), a user type, …
	// Data is the payload as the kernel sent it,
	// `audit(SEC.MSEC:SERIAL): fields…`. It belongs to the caller.
	Data []byte
}

// Stamp parses the record's `audit(SEC.MSEC:SERIAL):` prefix; see ParseStamp.
func (m Message) Stamp() (Stamp, []byte, error) { return ParseStamp(m.Data) }

// Stats are a Client's counters since Open. Every record received is
// counted once, in Messages when it is returned or in Discarded when Close
// finds it unread; everything else received is counted in Control, Foreign
// or DecodeErrors.
type Stats struct {
	Messages     uint64 // records returned by Receive/TryReceive
	Bytes        uint64 // payload bytes of those records
	ENOBUFS      uint64 // recv reported ENOBUFS: the socket overflowed (see the package doc on loss)
	DecodeErrors uint64 // datagrams (or their tails) that could not be decoded, dropped
	Control      uint64 // non-record messages skipped (acks, AUDIT_REPLACE probes)
	Foreign      uint64 // datagrams not sent by the kernel, dropped
	Discarded    uint64 // records received but not yet read when Close was called
}

// Errors. Each carries the errno that errors.Is also matches.
var (
	// ErrDaemonRegistered: another audit daemon holds the kernel's
	// registration; see RegisteredError. Matches unix.EEXIST.
	ErrDaemonRegistered error = &errnoError{"another audit daemon is registered", unix.EEXIST}
	// ErrNotUserType: SendUser was given a type the kernel does not take
	// from user space. Matches unix.EINVAL.
	ErrNotUserType error = &errnoError{"not a user-space record type (1100–1199, 2100–2999)", unix.EINVAL}
	// ErrBadText: SendUser was given text the kernel would cut or that
	// would break the one-line record format (NUL, newline, more than
	// 8560 bytes). Matches unix.EINVAL.
	ErrBadText error = &errnoError{"user record text has NUL, CR or LF, or exceeds 8560 bytes", unix.EINVAL}
)

type errnoError struct {
	msg   string
	errno unix.Errno
}

func (e *errnoError) Error() string { return "auditnl: " + e.msg }
func (e *errnoError) Unwrap() error { return e.errno }

// RegisteredError is Open's refusal to displace a registered audit daemon.
// It wraps ErrDaemonRegistered.
type RegisteredError struct {
	PID  uint32 // the registered daemon's pid
	Comm string // its /proc/PID/comm, "?" if unreadable
	Self bool   // the pid is this process: another Client in it is Primary
}

func (e *RegisteredError) Error() string {
	if e.Self {
		return fmt.Sprintf("auditnl: pid %d (%s), this process, is already the registered audit daemon", e.PID, e.Comm)
	}
	return fmt.Sprintf("auditnl: pid %d (%s) is the registered audit daemon (Config.Takeover replaces it)", e.PID, e.Comm)
}

func (e *RegisteredError) Unwrap() error { return ErrDaemonRegistered }

const (
	recvBufLen     = 64 << 10 // more than any record (libaudit: 8970)
	requestTimeout = 5 * time.Second
	takeoverWait   = 5 * time.Second
	// userTextMax is AUDIT_MESSAGE_TEXT_MAX: the kernel prints at most
	// this much of a user record's text.
	userTextMax = 8560
)

var aLongTimeAgo = time.Unix(1, 0)

// Client is a kernel audit netlink client. See the package documentation
// for its contract.
type Client struct {
	mode Mode
	log  *slog.Logger
	pid  int

	rec     *conn // the record stream
	rcvbuf  int   // receive buffer the kernel granted rec
	closed  atomic.Bool
	stale   atomic.Bool // a context's kick may have left a deadline on rec
	recvMu  sync.Mutex  // guards buf, pending, head and reads from rec
	buf     []byte
	pending []Message
	head    int

	reqMu      sync.Mutex // guards req, reqBuf, seq, registered, changes
	req        *conn      // requests: AUDIT_GET, AUDIT_SET, user records
	reqBuf     []byte
	seq        uint32
	registered bool
	changes    []change

	stats struct {
		messages, bytes, enobufs, decodeErrors, control, foreign, discarded atomic.Uint64
	}
}

// change is an audit setting Open changed, for Close to put back.
type change struct {
	mask     uint32 // one AUDIT_STATUS_* bit
	old, new uint32
}

// Open connects to kernel audit in the mode cfg.Mode. A nil log discards.
func Open(cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mode != Primary && cfg.Mode != Listener {
		return nil, fmt.Errorf("auditnl: open: unknown mode %d: %w", cfg.Mode, unix.EINVAL)
	}
	if cfg.Mode == Listener && (cfg.Takeover || cfg.Enable || cfg.BacklogLimit != 0 || cfg.BacklogWaitTime != 0) {
		return nil, fmt.Errorf("auditnl: open: a listener changes no audit setting (Takeover, Enable, BacklogLimit, BacklogWaitTime are for Primary): %w", unix.EINVAL)
	}
	if cfg.RcvBuf < 0 {
		return nil, fmt.Errorf("auditnl: open: negative RcvBuf %d: %w", cfg.RcvBuf, unix.EINVAL)
	}
	if cfg.RcvBuf == 0 {
		cfg.RcvBuf = DefaultRcvBuf
	}
	c := &Client{
		mode:   cfg.Mode,
		log:    log,
		pid:    os.Getpid(),
		buf:    make([]byte, recvBufLen),
		reqBuf: make([]byte, recvBufLen),
	}
	var err error
	if c.req, _, _, err = dial(0, 0); err != nil {
		return nil, fmt.Errorf("auditnl: open: %w", err)
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	// AUDIT_GET needs CAP_AUDIT_CONTROL, which a listener may lack: it only
	// logs what it found.
	st, err := c.status()
	if err != nil && cfg.Mode == Primary {
		c.req.close()
		return nil, fmt.Errorf("auditnl: open: audit status: %w", err)
	}
	if cfg.Mode == Listener {
		err = c.openListener(cfg)
	} else {
		err = c.openPrimary(cfg, st)
	}
	if err != nil {
		// Put back whatever was changed before the failure.
		if rerr := c.restore(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if c.rec != nil {
			c.rec.close()
		}
		c.req.close()
		return nil, err
	}
	log.Info("auditnl: open", "mode", cfg.Mode, "pid", c.pid, "rcvbuf", c.rcvbuf,
		"enabled_found", st.Enabled, "daemon_found", st.PID, "backlog_limit_found", st.BacklogLimit,
		"backlog_wait_time_found", st.BacklogWaitTime, "lost_found", st.Lost)
	return c, nil
}

func (c *Client) openListener(cfg Config) error {
	var (
		forced bool
		err    error
	)
	c.rec, c.rcvbuf, forced, err = dial(1<<(unix.AUDIT_NLGRP_READLOG-1), cfg.RcvBuf)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("auditnl: open listener (needs CAP_AUDIT_READ): %w", err)
		}
		return fmt.Errorf("auditnl: open listener: %w", err)
	}
	c.logRcvbuf(cfg.RcvBuf, forced)
	return nil
}

func (c *Client) openPrimary(cfg Config, st Status) error {
	if st.PID != 0 {
		if int(st.PID) == c.pid {
			return &RegisteredError{PID: st.PID, Comm: procComm(st.PID), Self: true}
		}
		if processAlive(st.PID) {
			if !cfg.Takeover {
				return &RegisteredError{PID: st.PID, Comm: procComm(st.PID)}
			}
			if err := c.takeover(st.PID); err != nil {
				return err
			}
			var err error
			if st, err = c.status(); err != nil {
				return fmt.Errorf("auditnl: open primary: audit status: %w", err)
			}
		}
		// A dead registrant is cleared by the kernel when we register: it
		// probes the old socket (AUDIT_REPLACE) and resets on failure.
	}
	orig := st
	if cfg.Adopt != nil {
		var err error
		if orig, err = cfg.Adopt(st); err != nil {
			return fmt.Errorf("auditnl: open primary: %w", err)
		}
	}
	var (
		forced bool
		err    error
	)
	if c.rec, c.rcvbuf, forced, err = dial(0, cfg.RcvBuf); err != nil {
		return fmt.Errorf("auditnl: open primary: %w", err)
	}
	c.logRcvbuf(cfg.RcvBuf, forced)
	// The backlog settings first, so that they hold when records start.
	if err := c.apply(unix.AUDIT_STATUS_BACKLOG_LIMIT, orig.BacklogLimit, st.BacklogLimit, cfg.BacklogLimit); err != nil {
		return fmt.Errorf("auditnl: open primary: set backlog_limit %d: %w", cfg.BacklogLimit, err)
	}
	if err := c.apply(unix.AUDIT_STATUS_BACKLOG_WAIT_TIME, orig.BacklogWaitTime, st.BacklogWaitTime, cfg.BacklogWaitTime); err != nil {
		return fmt.Errorf("auditnl: open primary: set backlog_wait_time %d: %w", cfg.BacklogWaitTime, err)
	}
	if err := c.register(cfg.Takeover); err != nil {
		return err
	}
	// Enabled last: records of the first moment go to us, not to printk.
	// 2 is locked until reboot: nothing to change or put back.
	if orig.Enabled != 2 && st.Enabled != 2 {
		var want uint32
		if cfg.Enable {
			want = 1
		}
		if err := c.apply(unix.AUDIT_STATUS_ENABLED, orig.Enabled, st.Enabled, want); err != nil {
			return fmt.Errorf("auditnl: open primary: enable audit: %w", err)
		}
	}
	return nil
}

// apply sets one audit setting to want (0: leave it as it is now, cur)
// and, if that differs from orig, remembers orig for Close.
func (c *Client) apply(mask, orig, cur, want uint32) error {
	target := want
	if want == 0 {
		target = cur
	}
	if cur != target {
		if err := c.set(mask, target); err != nil {
			return err
		}
	}
	if target != orig {
		c.changes = append(c.changes, change{mask: mask, old: orig, new: target})
	}
	return nil
}

func (c *Client) logRcvbuf(asked int, forced bool) {
	// The kernel reports twice the size asked for (bookkeeping overhead).
	if !forced && c.rcvbuf < 2*asked {
		c.log.Warn("auditnl: receive buffer smaller than asked (no CAP_NET_ADMIN for SO_RCVBUFFORCE; net.core.rmem_max caps SO_RCVBUF)",
			"asked", asked, "granted", c.rcvbuf)
	}
}

// register makes the record socket the kernel's audit daemon connection.
// The AUDIT_SET goes out on that socket: the kernel sends records to the
// port that registered. Its ack precedes any record.
func (c *Client) register(takeover bool) error {
	err := c.setPID(c.rec, uint32(c.pid))
	if errors.Is(err, unix.EEXIST) {
		st, serr := c.status()
		if serr != nil {
			return fmt.Errorf("auditnl: open primary: register: %w", errors.Join(err, serr))
		}
		holder := st.PID
		if !takeover || holder == 0 || int(holder) == c.pid {
			return &RegisteredError{PID: holder, Comm: procComm(holder), Self: int(holder) == c.pid}
		}
		if err := c.takeover(holder); err != nil {
			return err
		}
		err = c.setPID(c.rec, uint32(c.pid))
		if errors.Is(err, unix.EEXIST) {
			st, _ := c.status()
			return &RegisteredError{PID: st.PID, Comm: procComm(st.PID)}
		}
	}
	if err != nil {
		return fmt.Errorf("auditnl: open primary: register pid %d: %w", c.pid, err)
	}
	c.registered = true
	return nil
}

// takeover asks the registered daemon to stop, the way its service
// manager would, and waits until its registration is gone.
func (c *Client) takeover(pid uint32) error {
	comm := procComm(pid)
	c.log.Warn("auditnl: taking over kernel audit: sending SIGTERM to the registered daemon", "pid", pid, "comm", comm)
	if err := unix.Kill(int(pid), unix.SIGTERM); err != nil && err != unix.ESRCH {
		return fmt.Errorf("auditnl: open primary: takeover: signal pid %d (%s): %w", pid, comm, err)
	}
	deadline := time.Now().Add(takeoverWait)
	for {
		st, err := c.status()
		if err != nil {
			return fmt.Errorf("auditnl: open primary: takeover: %w", err)
		}
		// Gone when the process has exited: a daemon that let go of the
		// registration may still be putting back what it changed.
		if !processAlive(pid) {
			return nil
		}
		if time.Now().After(deadline) {
			if st.PID != pid {
				return nil
			}
			return fmt.Errorf("auditnl: open primary: takeover: pid %d (%s) still registered %v after SIGTERM: %w",
				pid, comm, takeoverWait, ErrDaemonRegistered)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Client) set(mask, v uint32) error {
	s := Status{Mask: mask}
	switch mask {
	case unix.AUDIT_STATUS_ENABLED:
		s.Enabled = v
	case unix.AUDIT_STATUS_BACKLOG_LIMIT:
		s.BacklogLimit = v
	case unix.AUDIT_STATUS_BACKLOG_WAIT_TIME:
		s.BacklogWaitTime = v
	default:
		return fmt.Errorf("set: unsupported mask %#x: %w", mask, unix.EINVAL)
	}
	_, err := c.roundTrip(c.req, unix.AUDIT_SET, marshalStatus(s), 0)
	return err
}

func statusField(s Status, mask uint32) uint32 {
	switch mask {
	case unix.AUDIT_STATUS_ENABLED:
		return s.Enabled
	case unix.AUDIT_STATUS_BACKLOG_LIMIT:
		return s.BacklogLimit
	case unix.AUDIT_STATUS_BACKLOG_WAIT_TIME:
		return s.BacklogWaitTime
	}
	return 0
}

func settingName(mask uint32) string {
	switch mask {
	case unix.AUDIT_STATUS_ENABLED:
		return "enabled"
	case unix.AUDIT_STATUS_BACKLOG_LIMIT:
		return "backlog_limit"
	case unix.AUDIT_STATUS_BACKLOG_WAIT_TIME:
		return "backlog_wait_time"
	}
	return "?"
}

func (c *Client) setPID(k *conn, pid uint32) error {
	_, err := c.roundTrip(k, unix.AUDIT_SET, marshalStatus(Status{Mask: unix.AUDIT_STATUS_PID, PID: pid}), 0)
	return err
}

// restore unregisters (if the registration is still ours) and puts back
// the settings Open changed (each only if it still has the value we set:
// a later change by someone else wins). Callers hold reqMu.
func (c *Client) restore() error {
	var errs []error
	if c.registered {
		c.registered = false
		st, err := c.status()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("unregister: %w", err))
		case int(st.PID) == c.pid:
			if err := c.setPID(c.req, 0); err != nil {
				errs = append(errs, fmt.Errorf("unregister: %w", err))
			}
		default:
			c.log.Warn("auditnl: no longer the registered audit daemon at close; registration left alone", "pid", st.PID)
		}
	}
	for i := len(c.changes) - 1; i >= 0; i-- {
		ch := c.changes[i]
		st, err := c.status()
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", settingName(ch.mask), err))
			continue
		}
		if cur := statusField(st, ch.mask); cur != ch.new {
			c.log.Warn("auditnl: audit setting changed by someone else; left as it is", "setting", settingName(ch.mask), "set", ch.new, "now", cur)
			continue
		}
		if err := c.set(ch.mask, ch.old); err != nil {
			errs = append(errs, fmt.Errorf("restore %s=%d: %w", settingName(ch.mask), ch.old, err))
		}
	}
	c.changes = nil
	return errors.Join(errs...)
}

// roundTrip sends one request with NLM_F_ACK on k and waits for the ack
// and, if reply is not 0, for a reply of that type (the kernel sends
// AUDIT_GET replies from a thread of their own, so they may follow the
// ack). Callers hold reqMu (or own the Client, in Open).
func (c *Client) roundTrip(k *conn, typ uint16, payload []byte, reply uint16) ([]byte, error) {
	var got []byte
	err := c.exchange(k, typ, payload, reply, false, func(data []byte) error {
		got = bytes.Clone(data)
		return nil
	})
	return got, err
}

// exchange sends one request with NLM_F_ACK on k and reads its answer,
// handing each payload of type want (when not 0) to each: until the ack
// and a first such payload, or with dump, until the ack and NLMSG_DONE.
// Answers to other sequence numbers (to a request that timed out)
// are skipped; an error ack ends it with its errno. A request answered by
// no message at all for requestTimeout fails; a long answer does not.
// ENOBUFS (an answer may be gone) fails a dump, whose messages must all
// arrive; a single reply is waited for. Callers hold reqMu.
func (c *Client) exchange(k *conn, typ uint16, payload []byte, want uint16, dump bool, each func([]byte) error) error {
	c.seq++
	seq := c.seq
	msg := appendMessage(nil, Header{Type: typ, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: seq}, payload)
	if err := k.send(msg); err != nil {
		return fmt.Errorf("send type %d: %w", typ, err)
	}
	defer k.f.SetReadDeadline(time.Time{})
	var a answer
	for !a.acked || (dump && !a.done) || (!dump && want != 0 && !a.seen) {
		if err := k.f.SetReadDeadline(time.Now().Add(requestTimeout)); err != nil {
			return err
		}
		n, err := k.recv(c.reqBuf, true)
		switch {
		case errors.Is(err, errForeign):
			c.stats.foreign.Add(1)
			continue
		case err == unix.ENOBUFS && !dump:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no answer to type %d within %v: %w", typ, requestTimeout, err)
		case err != nil:
			return fmt.Errorf("receive answer to type %d: %w", typ, err)
		case n > len(c.reqBuf):
			return fmt.Errorf("answer to type %d: %w: %d-byte datagram", typ, ErrTruncated, n)
		}
		d, derr := answerMessages(c.reqBuf[:n], seq, want, each)
		a.acked, a.done, a.seen = a.acked || d.acked, a.done || d.done, a.seen || d.seen
		if derr != nil {
			return fmt.Errorf("answer to type %d: %w", typ, derr)
		}
	}
	return nil
}

// answer is what a request's answer has brought so far.
type answer struct{ acked, done, seen bool }

// answerMessages handles one datagram of a request's answer (pure, for
// tests): payloads of type want (not 0) with sequence seq go to each; an
// error ack ends it.
func answerMessages(b []byte, seq uint32, want uint16, each func([]byte) error) (answer, error) {
	var a answer
	msgs, derr := Decode(b)
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			ack, err := ParseAck(m.Data)
			if err != nil {
				return a, err
			}
			if ack.Errno != 0 {
				return a, ack.Errno
			}
			a.acked = true
		case unix.NLMSG_DONE:
			a.done = true
		case want:
			if want == 0 {
				continue
			}
			if err := each(m.Data); err != nil {
				return a, err
			}
			a.seen = true
		}
	}
	return a, derr
}

// status is AUDIT_GET on the request socket. Callers hold reqMu.
func (c *Client) status() (Status, error) {
	data, err := c.roundTrip(c.req, unix.AUDIT_GET, nil, unix.AUDIT_GET)
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(data)
}

// Status returns the kernel's audit status (AUDIT_GET). It uses the
// request socket, never the record stream, and is safe to call
// concurrently with every other method.
func (c *Client) Status() (Status, error) {
	if c.closed.Load() {
		return Status{}, fmt.Errorf("auditnl: status: %w", os.ErrClosed)
	}
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	st, err := c.status()
	if err != nil {
		return Status{}, fmt.Errorf("auditnl: status: %w", c.closedErr(err))
	}
	return st, nil
}

// SendUser sends a user-space record of type t (1100–1199 or 2100–2999)
// with the given text into the kernel's audit stream and waits for the
// kernel's ack. The kernel stamps the record, applies the user and
// exclude rules, and delivers it like its own records, with the text
// inside msg='…' after the sender's credentials. While audit is disabled
// the kernel acks and discards it. A refusal by the kernel is returned as
// its errno (errors.Is(err, unix.EPERM) without CAP_AUDIT_WRITE). Safe to
// call concurrently with every other method, but never from the goroutine
// that calls Receive: while the kernel's backlog is full the kernel makes
// the sender wait (up to backlog_wait_time) for the reader to drain it.
func (c *Client) SendUser(t uint16, text string) error {
	if !IsUserType(t) {
		return fmt.Errorf("auditnl: send user record: type %d: %w", t, ErrNotUserType)
	}
	if len(text) > userTextMax || strings.ContainsAny(text, "\x00\r\n") {
		return fmt.Errorf("auditnl: send user record %d: %w", t, ErrBadText)
	}
	if c.closed.Load() {
		return fmt.Errorf("auditnl: send user record %d: %w", t, os.ErrClosed)
	}
	// NUL-terminated: the kernel overwrites the payload's last byte with
	// a NUL before printing it.
	payload := make([]byte, len(text)+1)
	copy(payload, text)
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if _, err := c.roundTrip(c.req, t, payload, 0); err != nil {
		return fmt.Errorf("auditnl: send user record %d: %w", t, c.closedErr(err))
	}
	return nil
}

// Receive returns the next audit record. It blocks until one arrives, ctx
// is done (the error wraps ctx.Err()) or the Client is closed (the error
// wraps os.ErrClosed). Call it from one goroutine; TryReceive shares its
// state and waits for a blocked Receive.
func (c *Client) Receive(ctx context.Context) (Message, error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.closed.Load() {
		return Message{}, fmt.Errorf("auditnl: receive: %w", os.ErrClosed)
	}
	if m, ok := c.pop(); ok {
		return m, nil
	}
	if err := ctx.Err(); err != nil {
		return Message{}, fmt.Errorf("auditnl: receive: %w", err)
	}
	if err := c.clearDeadline(); err != nil {
		return Message{}, fmt.Errorf("auditnl: receive: %w", err)
	}
	// Under load a datagram is usually waiting: take it without the
	// context machinery below, which only a wait needs.
	for {
		err := c.fill(false)
		if m, ok := c.pop(); ok {
			return m, nil
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return Message{}, fmt.Errorf("auditnl: receive: %w", c.closedErr(err))
		}
	}
	if ctx.Done() != nil {
		kicked := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.stale.Store(true)
			c.rec.f.SetReadDeadline(aLongTimeAgo)
			close(kicked)
		})
		// Wait for a started kick, so that no deadline is set after we
		// return.
		defer func() {
			if !stop() {
				<-kicked
			}
		}()
	}
	for {
		err := c.fill(true)
		if m, ok := c.pop(); ok {
			return m, nil
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := ctx.Err(); err != nil {
				return Message{}, fmt.Errorf("auditnl: receive: %w", err)
			}
			// Close's kick, seen by clearDeadline's check.
			c.stale.Store(true)
			if err := c.clearDeadline(); err != nil {
				return Message{}, fmt.Errorf("auditnl: receive: %w", err)
			}
		default:
			return Message{}, fmt.Errorf("auditnl: receive: %w", c.closedErr(err))
		}
	}
}

// TryReceive returns the next audit record if one is waiting, without
// blocking (ok false if none).
func (c *Client) TryReceive() (m Message, ok bool, err error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if c.closed.Load() {
		return Message{}, false, fmt.Errorf("auditnl: receive: %w", os.ErrClosed)
	}
	if m, ok := c.pop(); ok {
		return m, true, nil
	}
	if err := c.clearDeadline(); err != nil {
		return Message{}, false, fmt.Errorf("auditnl: receive: %w", err)
	}
	for {
		err := c.fill(false)
		if m, ok := c.pop(); ok {
			return m, true, nil
		}
		switch {
		case err == nil:
		case err == unix.EAGAIN:
			return Message{}, false, nil
		default:
			return Message{}, false, fmt.Errorf("auditnl: receive: %w", c.closedErr(err))
		}
	}
}

// clearDeadline removes a deadline left by a cancelled Receive (stale), then
// checks for Close (which sets closed before it kicks: whichever order the
// two race in, a closed Client is noticed). Callers hold recvMu.
func (c *Client) clearDeadline() error {
	if c.stale.Swap(false) {
		if err := c.rec.f.SetReadDeadline(time.Time{}); err != nil {
			return c.closedErr(err)
		}
	}
	if c.closed.Load() {
		return os.ErrClosed
	}
	return nil
}

// closedErr turns the errors of a file closed under us into os.ErrClosed.
func (c *Client) closedErr(err error) error {
	if c.closed.Load() && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w (%v)", os.ErrClosed, err)
	}
	return err
}

func (c *Client) pop() (Message, bool) {
	if c.head == len(c.pending) {
		return Message{}, false
	}
	m := c.pending[c.head]
	c.pending[c.head] = Message{}
	c.head++
	if c.head == len(c.pending) {
		c.pending, c.head = c.pending[:0], 0
	}
	c.stats.messages.Add(1)
	c.stats.bytes.Add(uint64(len(m.Data)))
	return m, true
}

// fill receives one datagram and queues its records. It returns nil when
// the datagram was handled (even if it held no record), unix.EAGAIN when
// !wait and nothing was waiting, and the socket's error otherwise.
// Callers hold recvMu.
func (c *Client) fill(wait bool) error {
	n, err := c.rec.recv(c.buf, wait)
	switch {
	case err == unix.ENOBUFS:
		c.stats.enobufs.Add(1)
		c.log.Debug("auditnl: receive buffer overflowed: records lost (ENOBUFS)", "mode", c.mode)
		return nil
	case errors.Is(err, errForeign):
		c.stats.foreign.Add(1)
		c.log.Warn("auditnl: dropped a datagram not sent by the kernel", "bytes", n)
		return nil
	case err != nil:
		return err
	case n > len(c.buf):
		c.stats.decodeErrors.Add(1)
		c.log.Warn("auditnl: dropped a datagram larger than the receive buffer", "bytes", n, "buffer", len(c.buf))
		return nil
	}
	msgs, derr := Decode(bytes.Clone(c.buf[:n]))
	for _, m := range msgs {
		if !IsRecordType(m.Header.Type) {
			c.control(m)
			continue
		}
		c.pending = append(c.pending, Message{Type: m.Header.Type, Data: m.Data[:len(m.Data):len(m.Data)]})
	}
	if derr != nil {
		c.stats.decodeErrors.Add(1)
		c.log.Warn("auditnl: dropped undecodable bytes", "err", derr, "bytes", n)
	}
	return nil
}

func (c *Client) control(m Raw) {
	c.stats.control.Add(1)
	switch m.Header.Type {
	case unix.AUDIT_REPLACE:
		// The kernel probes the registered daemon when a process asks to
		// become the daemon: someone tried to replace us.
		var pid uint32
		if len(m.Data) >= 4 {
			pid = binary.NativeEndian.Uint32(m.Data)
		}
		c.log.Info("auditnl: another process asked to become the audit daemon (AUDIT_REPLACE)", "pid", pid, "comm", procComm(pid))
	case unix.NLMSG_ERROR:
		if ack, err := ParseAck(m.Data); err == nil && ack.Errno != 0 {
			c.log.Warn("auditnl: error message on the record socket", "errno", ack.Errno, "request_type", ack.Request.Type)
		}
	}
}

// Stats returns the counters; safe to call at any time, also after Close.
func (c *Client) Stats() Stats {
	return Stats{
		Messages:     c.stats.messages.Load(),
		Bytes:        c.stats.bytes.Load(),
		ENOBUFS:      c.stats.enobufs.Load(),
		DecodeErrors: c.stats.decodeErrors.Load(),
		Control:      c.stats.control.Load(),
		Foreign:      c.stats.foreign.Load(),
		Discarded:    c.stats.discarded.Load(),
	}
}

// Close stops the record stream, counts the records received but not yet
// read in Stats.Discarded, unregisters (Primary, if the registration is
// still this Client's) and puts back the settings Open changed. A blocked
// Receive returns an error wrapping os.ErrClosed. Close may be called from
// any goroutine; a second Close returns an error wrapping os.ErrClosed.
func (c *Client) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("auditnl: close: %w", os.ErrClosed)
	}
	c.rec.f.SetReadDeadline(aLongTimeAgo) // kick a blocked Receive
	c.recvMu.Lock()
	discarded := c.drain()
	c.stats.discarded.Add(discarded)
	// The record socket first: the kernel then finds the registered port
	// gone and stops sending to it at once. Unregistering first would keep
	// records coming until the kernel had probed that port
	// (AUDIT_REPLACE), which waits up to 100 ms when the socket is full.
	errs := []error{c.rec.close()}
	c.recvMu.Unlock()

	c.reqMu.Lock()
	errs = append(errs, c.restore(), c.req.close())
	c.reqMu.Unlock()

	st := c.Stats()
	c.log.Info("auditnl: closed", "mode", c.mode, "messages", st.Messages, "enobufs", st.ENOBUFS,
		"decode_errors", st.DecodeErrors, "foreign", st.Foreign, "discarded", st.Discarded)
	if discarded > 0 {
		c.log.Warn("auditnl: records received but not read before close were discarded", "records", discarded)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auditnl: close: %w", err)
	}
	return nil
}

// drain counts the queued records and those waiting in the socket, reading
// at most one receive buffer's worth (the kernel keeps sending meanwhile).
// Callers hold recvMu.
func (c *Client) drain() uint64 {
	n := uint64(len(c.pending) - c.head)
	c.pending, c.head = nil, 0
	if err := c.rec.f.SetReadDeadline(time.Time{}); err != nil {
		return n
	}
	for budget := c.rcvbuf; budget > 0; {
		size, err := c.rec.recv(c.buf, false)
		if err == unix.ENOBUFS {
			c.stats.enobufs.Add(1)
			continue
		}
		if err != nil || size > len(c.buf) {
			break
		}
		budget -= size
		msgs, _ := Decode(c.buf[:size])
		for _, m := range msgs {
			if IsRecordType(m.Header.Type) {
				n++
			}
		}
	}
	return n
}

// procComm is /proc/PID/comm, "?" if unreadable.
func procComm(pid uint32) string {
	c, err := procfs.Host.Comm(int32(pid))
	if err != nil || c == "" {
		return "?"
	}
	return c
}

// processAlive reports whether pid names a process that has not exited (a
// zombie has exited: its sockets are closed).
func processAlive(pid uint32) bool { return procfs.Host.Alive(int32(pid)) }
