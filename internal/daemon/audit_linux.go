package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/contid/contid/internal/api"
	"github.com/contid/contid/internal/auditlog"
	"github.com/contid/contid/internal/auditnl"
	"github.com/contid/contid/internal/auditrules"
	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/output"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/reassembly"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/rules"
	"github.com/contid/contid/internal/search"
)

// The audit path (SPEC §5.3): a receiver goroutine reads the kernel's
// records (netlink, or auditd's plugin feed on stdin) in batches and hands
// them to the core goroutine, which first applies every task event the
// tracker holds (sync), so that a record's process is known, then runs the
// pipeline: reassembly, provenance, rules, output.
//
// contid's own records go into the kernel's stream as user records through
// a sender goroutine (never the receiver's: the kernel makes a sender wait
// while its backlog is full); when that is impossible they are stamped from
// contid's own serial space and written directly, and counted.

// auditMsg is one record as received: a netlink message, or a log line.
type auditMsg struct {
	t    uint16 // netlink type; 0 for a line
	data []byte
}

// auditIn is where records come from.
type auditIn interface {
	// next blocks for the first record of a batch, then appends what is
	// waiting without blocking, up to max.
	next(ctx context.Context, batch []auditMsg, max int) ([]auditMsg, error)
	Close() error
}

type auditState struct {
	mode    string // primary, listener, plugin or off
	in      auditIn
	nl      *auditnl.Client // primary and listener; nil in plugin and off mode
	writer  *auditnl.Client // where own records are sent; nil: written directly
	batches chan []auditMsg
	// received is closed when the receiver returns; atStop is the batch
	// it held when ctx ended, which closeAudit writes (netlink only).
	received chan struct{}
	atStop   []auditMsg
	pipe     *pipeline.Pipeline
	out      *output.Output
	json     *auditlog.Writer
	journal  *auditrules.Journal // primary: what contid changed in kernel audit, crash-safe
	rules    []auditrules.Rule   // the rules of audit.rules contid loaded; deleted at stop

	own         chan records.Record // to the sender goroutine
	poll        chan struct{}       // the core's tick asks the sender to poll the kernel
	enabled     atomic.Bool         // kernel audit enabled: user records are kept
	lastLost    uint32              // the kernel's lost counter when last asked (sender goroutine)
	kernelLost  atomic.Uint64       // increase of the kernel's lost counter since start
	lostPending atomic.Uint64       // of which not yet written as CONTID_LOSS (core)
	lostSeen    atomic.Uint32       // the lost counter lostPending counts up to (set after it)
	pending     map[pipeline.Loss]uint64
	lastNOBUFS  uint64
	counters    struct {
		batches, ownSent, ownLocal, ownQueueFull, ownSendErrors, lossRecords atomic.Uint64
	}
	stats atomic.Pointer[auditStats]
}

type auditStats struct {
	pipe pipeline.Stats
	out  output.Stats
	pk   packetStats
}

// openAudit opens the configured record source, the pipeline and its
// outputs. Mode auto is primary when no audit daemon is registered, and off
// (with a warning) when one is.
//
// In primary mode what contid changes in kernel audit (settings, rules) is
// kept in a journal beside the API socket, so that a daemon killed at any
// point leaves a state the next start adopts (internal/auditrules).
func (d *Daemon) openAudit(stdin io.Reader) (err error) {
	a := &d.audit
	a.mode = d.cfg.Audit.Mode
	defer func() {
		if err != nil {
			d.abortAudit()
		}
	}()
	switch a.mode {
	case "primary", "auto":
		// The whole file is checked before anything changes: a bad file
		// loads nothing.
		var want []auditrules.Rule
		if d.cfg.Audit.Rules != "" {
			if want, err = auditrules.ParseFile(d.cfg.Audit.Rules); err != nil {
				return fmt.Errorf("daemon: audit rules: %w", err)
			}
		}
		j := auditrules.NewJournal(filepath.Join(filepath.Dir(d.cfg.Socket), auditrules.StateFile), d.log)
		a.nl, err = auditnl.Open(auditnl.Config{
			Mode: auditnl.Primary, Takeover: d.cfg.Audit.Takeover, Enable: true,
			BacklogLimit: d.cfg.Audit.BacklogLimit, BacklogWaitTime: d.cfg.Audit.BacklogWaitTime,
			Adopt: j.Adopt,
		}, d.log)
		var reg *auditnl.RegisteredError
		if a.mode == "auto" && errors.As(err, &reg) {
			d.log.Warn("audit: another audit daemon is registered; kernel records are NOT annotated. "+
				"Run contid as its plugin (audit.mode = \"plugin\", contrib/plugins.d/contid.conf) or set audit.takeover",
				"daemon_pid", reg.PID, "err", err)
			a.mode, err = "off", nil
			break
		}
		if err != nil {
			j.Finish(false)
			return fmt.Errorf("daemon: audit: %w", err)
		}
		a.mode, a.journal = "primary", j
		a.in, a.writer = nlIn{a.nl}, a.nl
		if a.rules, err = j.Load(a.nl, want); err != nil {
			return fmt.Errorf("daemon: audit rules: %s: %w", d.cfg.Audit.Rules, err)
		}
	case "listener":
		if a.nl, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, d.log); err != nil {
			return fmt.Errorf("daemon: audit: %w", err)
		}
		a.in = nlIn{a.nl}
		a.writer, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, d.log)
		if err != nil {
			a.nl.Close()
			return fmt.Errorf("daemon: audit: %w", err)
		}
	case "plugin":
		a.in = &lineIn{r: bufio.NewReaderSize(stdin, 64<<10)}
		if a.writer, err = auditnl.Open(auditnl.Config{Mode: auditnl.Listener}, d.log); err != nil {
			d.log.Warn("audit: cannot send contid's records into the kernel stream; writing them to the host log only", "err", err)
			a.writer = nil
		}
	}
	if a.writer != nil {
		if st, err := a.writer.Status(); err == nil {
			a.enabled.Store(st.Enabled != 0)
			a.lastLost = st.Lost
		}
	}
	if a.journal != nil {
		// From the count last reported: a loss while no contid ran (after
		// a crash) is reported at the first tick.
		a.lastLost = a.journal.LastLost()
	}
	a.lostSeen.Store(a.lastLost)
	var rs *rules.Set
	if d.cfg.Audit.Filter != "" {
		f, err := os.Open(d.cfg.Audit.Filter)
		if err != nil {
			return fmt.Errorf("daemon: filter: %w", err)
		}
		rs, err = rules.Parse(f, d.cfg.Audit.Filter)
		f.Close()
		if err != nil {
			return fmt.Errorf("daemon: filter: %w", err)
		}
	}
	if err := d.openFleet(rs); err != nil {
		return err
	}
	if d.cfg.Audit.JSON {
		if a.json, err = auditlog.Open(d.cfg.JSONLog(), d.log); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	a.out = output.New(output.Config{
		Host: d.hl, JSON: a.json, MaxOpen: d.cfg.Audit.MaxOpen, Log: d.log,
		Container: func(id contid.ID) auditlog.Config { return d.cfg.ContainerLog(uint64(id)) },
		Dir:       d.cfg.ContainersDir(), KeepDropped: d.cfg.Containers.KeepDropped,
		KeepDroppedFor: time.Duration(d.cfg.Containers.KeepDroppedDays) * 24 * time.Hour,
		Lost:           d.lost, HostIndex: hostIndex(d.hix),
	})
	a.pipe = pipeline.New(pipeline.Config{
		Reassembly: reassembly.Config{Timeout: time.Duration(d.cfg.Audit.TimeoutMS) * time.Millisecond},
		Rules:      rs, Attributor: d.packetAttributor(a.mode), Writer: d.fleetWriter(a.out), Self: int32(os.Getpid()),
	})
	a.batches = make(chan []auditMsg, 64)
	a.own = make(chan records.Record, 4096)
	a.poll = make(chan struct{}, 1)
	d.log.Info("kernel audit records", "mode", a.mode, "filter", d.cfg.Audit.Filter, "audit_rules", len(a.rules))
	return nil
}

// hostIndex is the host log's index as output takes it (none when off).
func hostIndex(x *search.LogIndex) output.Noter {
	if x == nil {
		return nil
	}
	return x
}

// closeAudit stops the source, delivers what is in flight and puts back
// what openAudit changed.
func (d *Daemon) closeAudit() {
	a := &d.audit
	// The rules first: their removal (CONFIG_CHANGE) is still read and
	// logged, and no new record of theirs comes while the rest drains.
	clean := d.unloadRules()
	if a.pipe != nil {
		// What was received before the stop is still written: the
		// batches handed over, the one the receiver held when it
		// stopped, then what waits in the socket. The receiver of netlink
		// returns at once once ctx is done; it must have before the
		// socket is read here, or the records it held would come after
		// later ones, or not at all.
		if a.nl != nil && a.received != nil {
			<-a.received
		}
		for drained := false; !drained; {
			select {
			case b := <-a.batches:
				d.auditBatch(b)
			default:
				drained = true
			}
		}
		if len(a.atStop) > 0 {
			d.auditBatch(a.atStop)
			a.atStop = nil
		}
		if a.nl != nil {
			if b, _ := a.in.next(nil, nil, 1<<20); len(b) > 0 {
				d.auditBatch(b)
			}
		}
	}
	if a.in != nil {
		if err := a.in.Close(); err != nil && a.journal != nil {
			d.log.Error("audit: putting back the audit settings at stop", "err", err)
			clean = false
		}
	}
	d.finishJournal(clean)
	if a.pipe != nil {
		a.pipe.Flush()
		d.flushLosses()
		a.out.Close()
		d.closeFleet()
	}
	d.closePackets()
	for drained := false; !drained; {
		select {
		case r := <-a.own:
			d.local(r)
		default:
			drained = true
		}
	}
	if a.writer != nil && a.writer != a.nl {
		a.writer.Close()
	}
	if a.json != nil {
		a.json.Close()
	}
}

// unloadRules deletes the rules contid added (in primary mode); false if
// some could not be deleted.
func (d *Daemon) unloadRules() bool {
	a := &d.audit
	if a.journal == nil || a.nl == nil {
		return true
	}
	if err := a.journal.Unload(a.nl); err != nil {
		d.log.Error("audit rules: deleting at stop", "err", err)
		return false
	}
	return true
}

// finishJournal ends the journal: removed when everything was put back,
// kept for the next start otherwise.
func (d *Daemon) finishJournal(clean bool) {
	a := &d.audit
	if a.journal == nil {
		return
	}
	if err := a.journal.Finish(clean); err != nil {
		d.log.Error("audit state", "err", err)
	}
	a.journal = nil
}

// abortAudit undoes a start of the audit path that failed half-way.
func (d *Daemon) abortAudit() {
	a := &d.audit
	clean := d.unloadRules()
	if a.nl != nil {
		if err := a.nl.Close(); err != nil {
			d.log.Error("audit: closing after a failed start", "err", err)
			clean = false
		}
	}
	if a.writer != nil && a.writer != a.nl {
		a.writer.Close()
	}
	if a.json != nil {
		a.json.Close()
	}
	d.finishJournal(clean)
	d.closeFleet()
	*a = auditState{}
}

// receive moves batches of records to the core until ctx is done. A full
// channel blocks it: the kernel then holds records in its backlog and, in
// primary mode, makes their producers wait rather than lose them.
func (d *Daemon) receive(ctx context.Context) {
	a := &d.audit
	defer close(a.received)
	for ctx.Err() == nil {
		b, err := a.in.next(ctx, make([]auditMsg, 0, 64), 512)
		if len(b) > 0 {
			select {
			case a.batches <- b:
			case <-ctx.Done():
				// The core has stopped taking batches: closeAudit
				// writes this one after those it took.
				if a.nl != nil { // else closeAudit does not wait for us
					a.atStop = b
				}
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
				if errors.Is(err, io.EOF) {
					d.log.Info("audit: end of the plugin feed, stopping")
				} else {
					d.log.Error("audit: receive", "err", err)
				}
				d.stopAll()
			}
			return
		}
	}
}

// auditBatch runs one batch through the pipeline, after the task events
// that came before it.
func (d *Daemon) auditBatch(b []auditMsg) {
	d.audit.counters.batches.Add(1)
	d.sync()
	p := d.audit.pipe
	d.packetBatch(b)
	for _, m := range b {
		if m.t == 0 {
			p.PushLine(string(m.data))
		} else {
			p.PushMessage(m.t, m.data)
		}
	}
	p.EndRead()
	d.audit.out.Commit()
	d.fleetCommit()
	d.publishAudit()
}

// publishAudit makes the counters visible to Status.
func (d *Daemon) publishAudit() {
	a := &d.audit
	a.stats.Store(&auditStats{pipe: a.pipe.Stats(), out: a.out.Stats(), pk: d.packetStats()})
}

// tickAudit advances event time while the stream is idle and turns the
// kernel's and the socket's loss counters into CONTID_LOSS records.
func (d *Daemon) tickAudit(now time.Time) {
	a := &d.audit
	if a.pipe == nil {
		return
	}
	if len(a.batches) == 0 {
		a.pipe.Advance(now.UnixMilli())
	}
	d.watchPackets()
	d.flushLosses()
	a.out.Commit() // what Advance delivered
	if a.nl != nil {
		if n := a.nl.Stats().ENOBUFS; n > a.lastNOBUFS {
			d.lossRecord("enobufs", n-a.lastNOBUFS)
			a.lastNOBUFS = n
		}
	}
	// The sender asks the kernel (pollKernel), on this tick: one timer
	// wakes the daemon once a second, not one per goroutine. The core
	// never asks the kernel itself: a status request waits behind a user
	// record the kernel holds while its backlog is full, and the core
	// must not wait with it.
	if a.writer != nil {
		select {
		case a.poll <- struct{}{}:
		default: // still polling
		}
	}
	seen := a.lostSeen.Load()
	if n := a.lostPending.Swap(0); n > 0 {
		d.lossRecord("kernel", n)
		if a.journal != nil {
			// After the record: a crash in between reports it twice
			// rather than never (seen is never ahead of what n covers).
			if err := a.journal.SetLost(seen); err != nil {
				d.log.Warn("audit state: recording the lost count", "err", err)
			}
		}
	}
	if d.cfg.Log.Flush == auditlog.FlushNone {
		a.out.Flush()
	}
	a.out.Retry()
	for _, l := range a.out.TakeLosses() {
		d.diskFullLoss(l.Log, l.Lines)
	}
	d.fleetTick()
	d.publishAudit()
}

// lost is the pipeline's loss report. Losses are summed per kind and
// written once a second (flushLosses), so a flood of bad input cannot
// double itself in CONTID_LOSS records.
func (d *Daemon) lost(n uint64, why pipeline.Loss) {
	if d.audit.pending == nil {
		d.audit.pending = make(map[pipeline.Loss]uint64)
	}
	d.audit.pending[why] += n
}

func (d *Daemon) flushLosses() {
	for _, why := range []pipeline.Loss{pipeline.Gap, pipeline.Incomplete, pipeline.Late, pipeline.Discontinuity, pipeline.Malformed} {
		if n := d.audit.pending[why]; n > 0 {
			d.lossRecord(why.String(), n)
			delete(d.audit.pending, why)
		}
	}
}

// lossRecord writes a CONTID_LOSS record (SPEC §8). In listener mode it
// is written directly: sent into the kernel's stream it would come back
// by the multicast path whose loss it reports, and could be dropped the
// same way while the socket is still full.
func (d *Daemon) lossRecord(kind string, n uint64, extra ...records.Field) {
	d.audit.counters.lossRecords.Add(1)
	source := d.audit.mode
	if source == "" {
		source = "off"
	}
	emit := d.Emit
	if source == "listener" {
		emit = d.local
	}
	emit(records.Record{
		Type:  records.ContidLoss,
		Stamp: records.StampAt(time.Now().UnixNano(), 0),
		Fields: append([]records.Field{
			{Key: "kind", Value: kind}, {Key: "count", Value: strconv.FormatUint(n, 10)},
			{Key: "source", Value: source},
		}, extra...),
	})
}

// diskFullLoss records the lines a log dropped while its disk was full,
// once it writes again (so the record is not lost the same way). log is
// relative to the log directory.
func (d *Daemon) diskFullLoss(log string, n uint64) {
	d.log.Warn("log lines were lost while the disk was full", "log", log, "lines", n)
	d.lossRecord("disk_full", n, records.Field{Key: "log", Value: log})
}

// send is the sender goroutine: own records into the kernel's stream.
//
// The kernel acks and silently discards user records while audit is
// disabled, and the core learns of a change only at its next tick, so
// each batch is bracketed by status queries: disabled before, the batch is
// written directly; disabled after, the records sent may be gone and are
// written directly too (a possible duplicate, never a silent loss).
func (d *Daemon) send(ctx context.Context) {
	a := &d.audit
	var (
		buf   []byte
		batch []records.Record
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.poll:
			d.pollKernel()
		case r := <-a.own:
			batch = append(batch[:0], r)
			for more := true; more && len(batch) < 256; {
				select {
				case r := <-a.own:
					batch = append(batch, r)
				default:
					more = false
				}
			}
			if !d.pollKernel() {
				for _, r := range batch {
					d.local(r)
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
				if err := a.writer.SendUser(uint16(r.Type), string(body)); err != nil {
					a.counters.ownSendErrors.Add(1)
					d.log.Warn("audit: sending a record into the kernel stream failed; writing it to the host log", "err", err)
					d.local(r)
					continue
				}
				batch[sent] = r
				sent++
			}
			if sent > 0 && !d.pollKernel() {
				d.log.Warn("audit: kernel audit was disabled while contid's records were sent; writing them to the host log too", "records", sent)
				for _, r := range batch[:sent] {
					d.local(r)
				}
				continue
			}
			a.counters.ownSent.Add(uint64(sent))
		}
	}
}

// pollKernel asks the kernel whether audit is enabled (user records
// kept), remembers it, and takes the increase of its lost counter for the
// core to report; on a failed query it answers what it knew. Sender
// goroutine only.
func (d *Daemon) pollKernel() bool {
	a := &d.audit
	st, err := a.writer.Status()
	if err != nil {
		return a.enabled.Load()
	}
	a.enabled.Store(st.Enabled != 0)
	if st.Lost > a.lastLost {
		n := uint64(st.Lost - a.lastLost)
		a.kernelLost.Add(n)
		a.lostPending.Add(n)
	}
	a.lastLost = st.Lost // also after auditctl --reset-lost
	a.lostSeen.Store(st.Lost)
	return st.Enabled != 0
}

// nlIn reads netlink.
type nlIn struct{ c *auditnl.Client }

// next with a nil ctx does not block: it returns what is waiting.
func (n nlIn) next(ctx context.Context, b []auditMsg, max int) ([]auditMsg, error) {
	if ctx != nil {
		m, err := n.c.Receive(ctx)
		if err != nil {
			return b, err
		}
		b = append(b, auditMsg{t: m.Type, data: m.Data})
	}
	// Gather what follows within coalesce: each batch costs the daemon
	// a few wakeups (this goroutine's, the core's, the Go runtime's
	// sysmon while either runs), so a few larger batches are cheaper than
	// many small ones, for 20 ms of latency. At 250 execs a second a batch
	// then holds about five execs' records instead of one or two.
	// (Measured with bench/fair.sh: at 50 and 250 execs a second the
	// wakeups, not the parsing, are most of contid's CPU per event.)
	// One sleep, not a wakeup per record: the records that arrive
	// meanwhile wait in the socket and are taken at once.
	slept := ctx == nil
	for len(b) < max {
		m, ok, err := n.c.TryReceive()
		if err != nil {
			break // the end: the next call sees it
		}
		if !ok {
			if slept {
				break
			}
			time.Sleep(coalesce)
			slept = true
			continue
		}
		b = append(b, auditMsg{t: m.Type, data: m.Data})
	}
	return b, nil
}

const coalesce = 20 * time.Millisecond

func (n nlIn) Close() error { return n.c.Close() }

// lineIn reads auditd's plugin feed: one record per line (format=string).
type lineIn struct {
	r      *bufio.Reader
	closed atomic.Bool
}

func (l *lineIn) next(ctx context.Context, b []auditMsg, max int) ([]auditMsg, error) {
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
			b = append(b, auditMsg{data: bytes.Clone(bytes.TrimRight(line, "\r\n"))})
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

// auditStatus adds the audit path's counters to s (from any goroutine).
func (d *Daemon) auditStatus(s *api.Status) {
	a := &d.audit
	s.Audit = a.mode
	if a.mode == "" || a.mode == "off" {
		return
	}
	c := s.Counters
	c["audit_batches"] = a.counters.batches.Load()
	c["own_sent"] = a.counters.ownSent.Load()
	c["own_local"] = a.counters.ownLocal.Load()
	c["own_queue_full"] = a.counters.ownQueueFull.Load()
	c["own_send_errors"] = a.counters.ownSendErrors.Load()
	c["loss_records"] = a.counters.lossRecords.Load()
	d.fleetStatus(c)
	if a.nl != nil {
		ns := a.nl.Stats()
		c["audit_enobufs"] = ns.ENOBUFS
		c["audit_decode_errors"] = ns.DecodeErrors + ns.Foreign
	}
	c["kernel_lost"] = a.kernelLost.Load()
	st := a.stats.Load()
	if st == nil {
		return
	}
	p, o := st.pipe, st.out
	c["audit_received"] = p.Received
	c["audit_malformed"] = p.Malformed
	c["audit_events"] = p.Events
	c["audit_dropped_by_rule"] = p.Dropped
	c["audit_gaps"] = p.Reassembly.Gap
	c["audit_incomplete"] = p.Reassembly.Incomplete
	c["audit_late"] = p.Reassembly.Late
	c["audit_discontinuities"] = p.Reassembly.Discontinuities
	c["audit_contained"] = p.Provenance.Contained
	c["audit_unknown_subject"] = p.Provenance.Unknown
	c["audit_forged"] = p.Provenance.Forged
	packetCounters(c, p.Packets, st.pk)
	c["written_host"] = o.HostEvents
	c["written_container"] = o.ContainerEvents
	c["written_json"] = o.JSONEvents
	c["write_errors"] = o.LineErrors + o.OpenErrors
	c["container_logs_retired"] = o.Retired
	c["container_logs_removed"] = o.RetiredRemoved
	c["container_logs_retire_errors"] = o.RetireErrors
}
