// Package auditsrc is the daemon's source of kernel audit records and its
// way back into the kernel's stream (docs/audit.md): it opens the audit
// netlink socket as the kernel's audit daemon (primary) or as a
// multicast listener, or reads auditd's plugin feed; loads the rules of
// audit.rules and keeps what it changed in a crash-safe journal; and
// sends contid's own records into the stream.
//
// Goroutines: Receive reads records in batches and hands them over on
// Batches; a full channel blocks it, so the kernel holds records in its
// backlog and, in primary mode, makes their producers wait rather than
// lose them. Send is the sender goroutine: never the receiver's, since the
// kernel makes a sender wait while its backlog is full. Tick runs on the
// consumer's goroutine at its tick (once a second while records flow,
// less often on an idle host: a loss is then reported late, never not).
// Each batch is gathered for audit.batch_ms after its first record.
//
// Loss: the kernel's lost counter and the socket's ENOBUFS are reported
// through Tick's loss function, never silently.
package auditsrc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl"
	"github.com/contid/contid/internal/source/auditrules"
)

// in is where records come from.
type in interface {
	// next blocks for the first record of a batch, then appends what is
	// waiting without blocking, up to max.
	next(ctx context.Context, batch []records.Raw, max int) ([]records.Raw, error)
	Close() error
}

// Config configures Open.
type Config struct {
	Audit config.Audit
	// StateDir holds the journal of what contid changed in kernel audit
	// (primary mode; the API socket's directory).
	StateDir string
	// Stdin is auditd's plugin feed (mode plugin).
	Stdin io.Reader
	Log   *slog.Logger
}

// Source is an open record source. See the package doc.
type Source struct {
	log     *slog.Logger
	mode    string // primary, listener, plugin or off
	in      in
	nl      *auditnl.Client // primary and listener; nil in plugin and off mode
	writer  *auditnl.Client // where own records are sent; nil: written directly
	batches chan []records.Raw
	// received is closed when Receive returns; atStop is the batch it
	// held when ctx ended, which Stop hands on (netlink only).
	received chan struct{}
	atStop   []records.Raw
	journal  *auditrules.Journal // primary: what contid changed in kernel audit, crash-safe
	rules    []auditrules.Rule   // the rules of audit.rules contid loaded; deleted at stop

	own         chan records.Record // to the sender goroutine
	poll        chan struct{}       // the tick asks the sender to poll the kernel
	enabled     atomic.Bool         // kernel audit enabled: user records are kept
	lastLost    uint32              // the kernel's lost counter when last asked (sender goroutine)
	kernelLost  atomic.Uint64       // increase of the kernel's lost counter since start
	lostPending atomic.Uint64       // of which not yet reported (Tick)
	lostSeen    atomic.Uint32       // the lost counter lostPending counts up to (set after it)
	lastNOBUFS  uint64
	counters    struct {
		ownSent, ownSendErrors atomic.Uint64
	}
}

// Open opens the configured record source. Mode auto is primary when no
// audit daemon is registered, and off (with a warning) when one is: Mode
// says which it became.
//
// In primary mode what contid changes in kernel audit (settings, rules)
// is kept in the journal, so that a daemon killed at any point leaves a
// state the next start adopts (package auditrules).
func Open(cfg Config) (_ *Source, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{log: log, mode: cfg.Audit.Mode}
	defer func() {
		if err != nil {
			s.Abort()
		}
	}()
	switch s.mode {
	case "primary", "auto":
		// The whole file is checked before anything changes: a bad file
		// loads nothing.
		var want []auditrules.Rule
		if cfg.Audit.Rules != "" {
			if want, err = auditrules.ParseFile(cfg.Audit.Rules); err != nil {
				return nil, fmt.Errorf("daemon: audit rules: %w", err)
			}
		}
		j := auditrules.NewJournal(filepath.Join(cfg.StateDir, auditrules.StateFile), log)
		s.nl, err = auditnl.Open(auditnl.Config{
			Mode: auditnl.Primary, Takeover: cfg.Audit.Takeover, Enable: true,
			BacklogLimit: cfg.Audit.BacklogLimit, BacklogWaitTime: cfg.Audit.BacklogWaitTime,
			Adopt: j.Adopt,
		}, log)
		var reg *auditnl.RegisteredError
		if s.mode == "auto" && errors.As(err, &reg) {
			log.Warn("audit: another audit daemon is registered; kernel records are NOT annotated. "+
				"Run contid as its plugin (audit.mode = \"plugin\", contrib/plugins.d/contid.conf) or set audit.takeover",
				"daemon_pid", reg.PID, "err", err)
			s.mode, err = "off", nil
			break
		}
		if err != nil {
			j.Finish(false)
			return nil, fmt.Errorf("daemon: audit: %w", err)
		}
		s.mode, s.journal = "primary", j
		s.in, s.writer = nlIn{s.nl, window(cfg.Audit)}, s.nl
		if s.rules, err = j.Load(s.nl, want); err != nil {
			return nil, fmt.Errorf("daemon: audit rules: %s: %w", cfg.Audit.Rules, err)
		}
	case "listener":
		if s.nl, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, log); err != nil {
			return nil, fmt.Errorf("daemon: audit: %w", err)
		}
		s.in = nlIn{s.nl, window(cfg.Audit)}
		s.writer, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, log)
		if err != nil {
			return nil, fmt.Errorf("daemon: audit: %w", err)
		}
	case "plugin":
		s.in = &lineIn{r: bufio.NewReaderSize(cfg.Stdin, 64<<10)}
		if s.writer, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, log); err != nil {
			log.Warn("audit: cannot send contid's records into the kernel stream; writing them to the host log only", "err", err)
			s.writer, err = nil, nil
		}
	}
	if s.writer != nil {
		if st, err := s.writer.Status(); err == nil {
			s.enabled.Store(st.Enabled != 0)
			s.lastLost = st.Lost
		}
	}
	if s.journal != nil {
		// From the count last reported: a loss while no contid ran (after
		// a crash) is reported at the first tick.
		s.lastLost = s.journal.LastLost()
	}
	s.lostSeen.Store(s.lastLost)
	s.batches = make(chan []records.Raw, 64)
	s.own = make(chan records.Record, 4096)
	s.poll = make(chan struct{}, 1)
	return s, nil
}

// Mode is the mode in force: primary, listener, plugin or off.
func (s *Source) Mode() string { return s.mode }

// Rules is how many rules of audit.rules were loaded.
func (s *Source) Rules() int { return len(s.rules) }

// Reads reports whether there are records to receive (Receive must run).
func (s *Source) Reads() bool { return s.in != nil }

// Batches delivers the records Receive read, in order.
func (s *Source) Batches() <-chan []records.Raw { return s.batches }

// Sends reports whether own records can go into the kernel's stream
// (SendLoop must run, and Send may be called).
func (s *Source) Sends() bool { return s.writer != nil }

// Send queues r for the sender goroutine; false when the queue is full.
func (s *Source) Send(r records.Record) bool {
	select {
	case s.own <- r:
		return true
	default:
		return false
	}
}

// Queues reports the fill of the batch and own-record queues; safe from
// any goroutine.
func (s *Source) Queues() (batches, batchesCap, own, ownCap int) {
	return len(s.batches), cap(s.batches), len(s.own), cap(s.own)
}

// Receive moves batches of records to Batches until ctx is done. At
// the end of the plugin feed, or on an error, it calls stop. It is not
// waited for: a read of the plugin feed cannot be interrupted; once ctx
// is done it touches nothing but what Stop waits for.
func (s *Source) Receive(ctx context.Context, stop func()) {
	s.received = make(chan struct{})
	go s.receive(ctx, stop)
}

func (s *Source) receive(ctx context.Context, stop func()) {
	defer close(s.received)
	for ctx.Err() == nil {
		b, err := s.in.next(ctx, make([]records.Raw, 0, 64), 512)
		if len(b) > 0 {
			select {
			case s.batches <- b:
			case <-ctx.Done():
				// The consumer has stopped taking batches: Stop hands
				// this one on after those it took.
				if s.nl != nil { // else Stop does not wait for us
					s.atStop = b
				}
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
				if errors.Is(err, io.EOF) {
					s.log.Info("audit: end of the plugin feed, stopping")
				} else {
					s.log.Error("audit: receive", "err", err)
				}
				stop()
			}
			return
		}
	}
}

// Stop ends the source at the daemon's stop, after ctx of Receive and
// Send is done: it deletes the rules contid added (their removal, a
// CONFIG_CHANGE, is still read and handed on, and no new record of theirs
// comes meanwhile), hands on to batch what was received (the batches
// handed over, the one Receive held, then what waits in the socket), and
// puts back the audit settings. The journal is removed when everything
// was put back, kept for the next start otherwise.
func (s *Source) Stop(batch func([]records.Raw)) {
	clean := s.unloadRules()
	// The receiver of netlink returns at once once ctx is done; it must
	// have before the socket is read here, or the records it held would
	// come after later ones, or not at all.
	if s.nl != nil && s.received != nil {
		<-s.received
	}
	for drained := false; !drained; {
		select {
		case b := <-s.batches:
			batch(b)
		default:
			drained = true
		}
	}
	if len(s.atStop) > 0 {
		batch(s.atStop)
		s.atStop = nil
	}
	if s.nl != nil {
		if b, _ := s.in.next(nil, nil, 1<<20); len(b) > 0 {
			batch(b)
		}
	}
	if s.in != nil {
		if err := s.in.Close(); err != nil && s.journal != nil {
			s.log.Error("audit: putting back the audit settings at stop", "err", err)
			clean = false
		}
	}
	s.finishJournal(clean)
}

// Close writes with local the own records still queued, once Send has
// returned, and closes the sender's socket.
func (s *Source) Close(local func(records.Record)) {
	for drained := false; !drained; {
		select {
		case r := <-s.own:
			local(r)
		default:
			drained = true
		}
	}
	if s.writer != nil && s.writer != s.nl {
		s.writer.Close()
	}
}

// unloadRules deletes the rules contid added (in primary mode); false if
// some could not be deleted.
func (s *Source) unloadRules() bool {
	if s.journal == nil || s.nl == nil {
		return true
	}
	if err := s.journal.Unload(s.nl); err != nil {
		s.log.Error("audit rules: deleting at stop", "err", err)
		return false
	}
	return true
}

// finishJournal ends the journal: removed when everything was put back,
// kept for the next start otherwise.
func (s *Source) finishJournal(clean bool) {
	if s.journal == nil {
		return
	}
	if err := s.journal.Finish(clean); err != nil {
		s.log.Error("audit state", "err", err)
	}
	s.journal = nil
}

// Abort undoes an Open whose start failed half-way (here or in what the
// daemon opened after it).
func (s *Source) Abort() {
	clean := s.unloadRules()
	if s.nl != nil {
		if err := s.nl.Close(); err != nil {
			s.log.Error("audit: closing after a failed start", "err", err)
			clean = false
		}
	}
	if s.writer != nil && s.writer != s.nl {
		s.writer.Close()
	}
	s.finishJournal(clean)
	s.in, s.nl, s.writer = nil, nil, nil
}

// Tick reports the socket's and the kernel's losses with loss, and asks
// the sender to poll the kernel; at every tick, on the consumer's
// goroutine. The sender asks the kernel (pollKernel), not the caller: a
// status request waits behind a user record the kernel holds while its
// backlog is full, and the consumer must not wait with it.
func (s *Source) Tick(loss func(kind string, n uint64)) {
	if s.nl != nil {
		if n := s.nl.Stats().ENOBUFS; n > s.lastNOBUFS {
			loss("enobufs", n-s.lastNOBUFS)
			s.lastNOBUFS = n
		}
	}
	if s.writer != nil {
		select {
		case s.poll <- struct{}{}:
		default: // still polling
		}
	}
	seen := s.lostSeen.Load()
	if n := s.lostPending.Swap(0); n > 0 {
		loss("kernel", n)
		if s.journal != nil {
			// After the record: a crash in between reports it twice
			// rather than never (seen is never ahead of what n covers).
			if err := s.journal.SetLost(seen); err != nil {
				s.log.Warn("audit state: recording the lost count", "err", err)
			}
		}
	}
}

// SendLoop is the sender goroutine: own records into the kernel's stream,
// until ctx is done; local writes a record directly.
//
// The kernel acks and silently discards user records while audit is
// disabled, and the consumer learns of a change only at its next tick, so
// each batch is bracketed by status queries: disabled before, the batch is
// written directly; disabled after, the records sent may be gone and are
// written directly too (a possible duplicate, never a silent loss).
func (s *Source) SendLoop(ctx context.Context, local func(records.Record)) {
	var (
		buf   []byte
		batch []records.Record
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.poll:
			s.pollKernel()
		case r := <-s.own:
			batch = append(batch[:0], r)
			for more := true; more && len(batch) < 256; {
				select {
				case r := <-s.own:
					batch = append(batch, r)
				default:
					more = false
				}
			}
			if !s.pollKernel() {
				for _, r := range batch {
					local(r)
				}
				continue
			}
			sent := 0
			for _, r := range batch {
				buf = records.AppendRaw(buf[:0], &r)
				body := buf
				if i := bytes.Index(buf, []byte("): ")); i >= 0 {
					body = buf[i+3:]
				}
				if err := s.writer.SendUser(uint16(r.Type), string(body)); err != nil {
					s.counters.ownSendErrors.Add(1)
					s.log.Warn("audit: sending a record into the kernel stream failed; writing it to the host log", "err", err)
					local(r)
					continue
				}
				batch[sent] = r
				sent++
			}
			if sent > 0 && !s.pollKernel() {
				s.log.Warn("audit: kernel audit was disabled while contid's records were sent; writing them to the host log too", "records", sent)
				for _, r := range batch[:sent] {
					local(r)
				}
				continue
			}
			s.counters.ownSent.Add(uint64(sent))
		}
	}
}

// pollKernel asks the kernel whether audit is enabled (user records
// kept), remembers it, and takes the increase of its lost counter for
// Tick to report; on a failed query it answers what it knew. Sender
// goroutine only.
func (s *Source) pollKernel() bool {
	st, err := s.writer.Status()
	if err != nil {
		return s.enabled.Load()
	}
	s.enabled.Store(st.Enabled != 0)
	if st.Lost > s.lastLost {
		n := uint64(st.Lost - s.lastLost)
		s.kernelLost.Add(n)
		s.lostPending.Add(n)
	}
	s.lastLost = st.Lost // also after auditctl --reset-lost
	s.lostSeen.Store(st.Lost)
	return st.Enabled != 0
}

// Counters adds the source's counters to c; safe from any goroutine.
func (s *Source) Counters(c map[string]uint64) {
	c["own_sent"] = s.counters.ownSent.Load()
	c["own_send_errors"] = s.counters.ownSendErrors.Load()
	if s.nl != nil {
		ns := s.nl.Stats()
		c["audit_enobufs"] = ns.ENOBUFS
		c["audit_decode_errors"] = ns.DecodeErrors + ns.Foreign
	}
	c["kernel_lost"] = s.kernelLost.Load()
}

// nlIn reads netlink, gathering each batch for window after its first
// record (config audit.batch_ms).
type nlIn struct {
	c      *auditnl.Client
	window time.Duration
}

func window(a config.Audit) time.Duration { return time.Duration(a.BatchMS) * time.Millisecond }

// next with a nil ctx does not block: it returns what is waiting.
func (n nlIn) next(ctx context.Context, b []records.Raw, max int) ([]records.Raw, error) {
	if ctx != nil {
		m, err := n.c.Receive(ctx)
		if err != nil {
			return b, err
		}
		b = append(b, records.Raw{Type: m.Type, Data: m.Data})
	}
	// Gather what follows within the window: each batch costs the
	// daemon a fixed sum of wakeups and scheduling (this goroutine's, the
	// core's, the Go runtime's, and an fsync of each log the batch brings
	// past its freq), so a few larger batches are cheaper than many small
	// ones, for at most the window of latency. One sleep, not a wakeup per
	// record: the records that arrive meanwhile wait in the socket (16
	// MiB, seconds of the heaviest load) and are taken at once. A batch
	// that fills up is handed over without a sleep, so this does not bound
	// throughput.
	slept := ctx == nil || n.window <= 0
	for len(b) < max {
		m, ok, err := n.c.TryReceive()
		if err != nil {
			break // the end: the next call sees it
		}
		if !ok {
			if slept {
				break
			}
			time.Sleep(n.window)
			slept = true
			continue
		}
		b = append(b, records.Raw{Type: m.Type, Data: m.Data})
	}
	return b, nil
}

func (n nlIn) Close() error { return n.c.Close() }

// lineIn reads auditd's plugin feed: one record per line (format=string).
type lineIn struct {
	r *bufio.Reader
}

func (l *lineIn) next(ctx context.Context, b []records.Raw, max int) ([]records.Raw, error) {
	for len(b) < max {
		line, err := l.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than any record: skip to its end; the
			// pipeline counts what it is given as malformed.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = l.r.ReadSlice('\n')
			}
			line = []byte("oversized line")
		}
		if len(line) > 0 {
			b = append(b, records.Raw{Data: bytes.Clone(bytes.TrimRight(line, "\r\n"))})
		}
		if err != nil {
			return b, err
		}
		if l.r.Buffered() == 0 {
			break
		}
	}
	return b, nil
}

func (l *lineIn) Close() error { return nil }
