// Package replay is contid replay: a trace (package trace) through the
// daemon's own code. A trace of engine inputs alone goes through a fresh
// engine (trace.Run). A trace recorded with kernel audit on also holds
// the audit path's inputs, and then the engine, fed by the recorded
// inputs, attributes the recorded batches in the daemon's pipeline and
// output (package auditpipe), which write a host log in a temporary
// directory; the output is that log, in the chosen format. Own records
// that went into the kernel's stream are not written: they come back in
// the recorded batches, as they did live.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/contid/contid/internal/core"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/auditlog"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/sink/trace"
	"github.com/contid/contid/internal/wiring/auditpipe"
)

// Options, Format and Result are trace's.
type (
	Options = trace.Options
	Format  = trace.Format
	Result  = trace.Result
)

// The output formats.
const (
	Raw         = trace.Raw
	Interpreted = trace.Interpreted
	JSON        = trace.JSON
)

// maxQueued bounds the own records kept in case the recorded daemon wrote
// them locally at stop (its sender's queue is far smaller).
const maxQueued = 1 << 16

// Run replays the trace in r (named name in errors) and writes the
// records to out. The first bad line stops the replay with an error
// naming it; the output holds what came before it.
func Run(r io.ReadSeeker, name string, out io.Writer, opt Options) (Result, error) {
	audit, err := hasAudit(r)
	if err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	if !audit {
		return trace.Run(r, name, out, opt)
	}
	dir, err := os.MkdirTemp("", "contid-replay-")
	if err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	defer os.RemoveAll(dir)
	host := filepath.Join(dir, "audit.log")
	res, err := runAudit(r, name, host)
	// The log holds every record of the host: gone before it is printed,
	// so a reader that stops early (SIGPIPE) leaves nothing behind.
	f, oerr := os.Open(host)
	os.RemoveAll(dir)
	if oerr != nil {
		return res, errors.Join(err, fmt.Errorf("replay: %w", oerr))
	}
	defer f.Close()
	if perr := printLog(f, out, opt); perr != nil && err == nil {
		err = perr
	}
	return res, err
}

// hasAudit reports whether the trace has an "audit" line: a run recorded
// with kernel audit on.
func hasAudit(r io.Reader) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), trace.MaxLine)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if !bytes.Contains(b, []byte(`"audit"`)) {
			continue
		}
		var l struct{ Op string }
		if json.Unmarshal(b, &l) == nil && l.Op == "audit" {
			return true, nil
		}
	}
	return false, sc.Err()
}

// run is the state of an audit replay.
type run struct {
	dec    *trace.Decoder
	name   string
	host   *auditlog.Writer
	mode   string
	pipe   *auditpipe.Pipe
	serial uint64
	sent   []bool // the current input's "sent"
	nsent  int    // own records the current input wrote so far
	queued []records.Record
	err    error // the first divergence found in a callback
}

func runAudit(r io.Reader, name, hostPath string) (Result, error) {
	hl, err := auditlog.Open(auditlog.Config{Path: hostPath}, nil)
	if err != nil {
		return Result{}, fmt.Errorf("replay: %w", err)
	}
	rn := &run{dec: trace.NewDecoder(r, name), name: name, host: hl}
	k := trace.NewKernel(rn.dec)
	e := engine.New(engine.Config{Sink: rn, Kernel: k})
	var res Result
	for rn.err == nil {
		var it any
		if it, err = rn.dec.NextItem(); err != nil {
			break
		}
		switch v := it.(type) {
		case engine.Input:
			res.Inputs++
			k.Reset()
			rn.sent, rn.nsent = rn.dec.Sent(), 0
			if aerr := e.Apply(v); aerr != nil {
				var refused *engine.Error
				if !errors.As(aerr, &refused) {
					err = fmt.Errorf("%s:%d: %w", name, rn.dec.Line(), aerr)
				}
				res.Refused++
			}
		case trace.AuditStart:
			err = rn.open(v, e)
		case trace.Batch:
			if err = rn.needPipe(); err == nil {
				rn.pipe.Batch(v.Records)
			}
		case trace.Tick:
			if err = rn.needPipe(); err == nil {
				rn.pipe.Tick(time.Unix(0, v.Time), v.Idle)
			}
		case trace.Loss:
			rn.loss(v)
		case trace.Stop:
			if err = rn.needPipe(); err == nil {
				rn.pipe.Close()
				rn.pipe = nil
			}
		case trace.Unsent:
			if v.Count > len(rn.queued) {
				err = fmt.Errorf("%s:%d: %d own records unsent, but only %d were sent", name, rn.dec.Line(), v.Count, len(rn.queued))
				break
			}
			for _, r := range rn.queued[len(rn.queued)-v.Count:] {
				rn.local(r)
			}
			rn.queued = rn.queued[:len(rn.queued)-v.Count]
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err == nil {
		err = rn.err
	}
	res.Stats = e.Stats()
	if cerr := hl.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("replay: %w", cerr)
	}
	return res, err
}

func (rn *run) needPipe() error {
	if rn.pipe == nil {
		return fmt.Errorf("%s:%d: an audit input outside the audit path (before \"audit\" or after \"stop\")", rn.name, rn.dec.Line())
	}
	return nil
}

// open builds the pipe as the recorded daemon did, but for packet
// pairing, whose kernel side is not recorded.
func (rn *run) open(a trace.AuditStart, e *engine.Engine) error {
	if rn.pipe != nil {
		return fmt.Errorf("%s:%d: a second \"audit\"", rn.name, rn.dec.Line())
	}
	rn.mode = a.Mode
	filter := ""
	if a.Filter != "" {
		filter = fmt.Sprintf("%s:%d (filter)", rn.name, rn.dec.Line())
	}
	var err error
	rn.pipe, err = auditpipe.Open(auditpipe.Config{
		Mode: "replay", Filter: filter, FilterText: a.Filter, Self: a.Self,
		Timeout: time.Duration(a.TimeoutMS) * time.Millisecond,
		Output:  output.Config{Host: rn.host},
		Engine:  e,
		Loss:    rn.pipeLoss,
		// The daemon's stream route is not recorded, and not replayed.
		AnyStream: true,
	})
	if err != nil {
		return fmt.Errorf("%s:%d: %w", rn.name, rn.dec.Line(), err)
	}
	return nil
}

// Emit takes the engine's own records: those recorded as sent went into
// the kernel's stream and come back in a batch; the rest are written.
func (rn *run) Emit(r records.Record) {
	sent := rn.nsent < len(rn.sent) && rn.sent[rn.nsent]
	rn.nsent++
	if sent {
		rn.queue(r)
		return
	}
	rn.local(r)
}

func (rn *run) queue(r records.Record) {
	if len(rn.queued) >= maxQueued {
		rn.queued = append(rn.queued[:0], rn.queued[len(rn.queued)-maxQueued/2:]...)
	}
	rn.queued = append(rn.queued, r)
}

// local writes an own record as the core does: stamped from contid's
// serial space.
func (rn *run) local(r records.Record) {
	r.Stamp.Serial = records.OwnSerialBase + rn.serial
	rn.serial++
	if err := rn.host.WriteLine(records.AppendRaw(nil, &r)); err != nil && rn.err == nil {
		rn.err = fmt.Errorf("replay: host log: %w", err)
	}
}

// loss writes a recorded loss record as the core wrote it.
func (rn *run) loss(l trace.Loss) {
	r := core.LossRecord(rn.mode, l.Time, l.Kind, l.Count, l.Extra...)
	switch {
	case l.Sent:
		rn.queue(r)
	default:
		rn.local(r)
	}
}

// pipeLoss is the replayed pipeline's loss report: the live one recorded
// it as the next line, with its stamp; a different line is a divergence.
func (rn *run) pipeLoss(kind string, n uint64) {
	if rn.err != nil {
		return
	}
	it, err := rn.dec.NextItem()
	l, ok := it.(trace.Loss)
	switch {
	case err != nil:
		rn.err = fmt.Errorf("replay: the pipeline lost %d %s, the trace: %w", n, kind, err)
	case !ok || l.Kind != kind || l.Count != n:
		rn.err = fmt.Errorf("%s:%d: the pipeline lost %d %s here, the trace has %+v: the replay diverged", rn.name, rn.dec.Line(), n, kind, it)
	default:
		rn.loss(l)
	}
}

// printLog writes the host log f to out in the chosen format.
func printLog(f io.Reader, out io.Writer, opt Options) error {
	if opt.Format == Raw {
		_, err := io.Copy(out, f)
		return err
	}
	loc := opt.Location
	if loc == nil {
		loc = time.UTC
	}
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), trace.MaxLine)
	var b []byte
	for sc.Scan() {
		r, err := records.ParseLine(sc.Text())
		if err != nil {
			return fmt.Errorf("replay: the host log: %w", err)
		}
		if opt.Format == JSON {
			b = records.AppendJSON(b[:0], &r)
		} else {
			b = records.AppendInterpreted(b[:0], &r, loc)
		}
		w.Write(append(b, '\n'))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("replay: the host log: %w", err)
	}
	return w.Flush()
}
