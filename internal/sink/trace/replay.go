package trace

// Replay: Run takes a trace through a fresh engine and writes the records
// it produces, stamped from contid's own serial space (records.OwnSerialBase
// upward, which cannot collide with the kernel's 32-bit serials). Same
// trace in, byte-identical output out.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/records"
)

// Format selects how records are written.
type Format int

const (
	Raw         Format = iota // auditd raw lines, as in audit.log
	Interpreted               // names and local times, like ausearch -i
	JSON                      // one JSON object per line
)

// Options configure a replay. The zero value writes raw records.
type Options struct {
	Format Format
	// Location is used for interpreted times; nil means UTC, so output does
	// not depend on the machine.
	Location *time.Location
}

// Result summarises a replay.
type Result struct {
	Inputs  int
	Refused int // requests the engine refused (each is also a record)
	Stats   engine.Stats
}

// writer stamps and formats the engine's records.
type writer struct {
	w      *bufio.Writer
	opt    Options
	serial uint64
	buf    []byte
}

func (w *writer) Emit(r records.Record) {
	r.Stamp.Serial = records.OwnSerialBase + w.serial
	w.serial++
	w.buf = w.buf[:0]
	switch w.opt.Format {
	case Interpreted:
		w.buf = records.AppendInterpreted(w.buf, &r, w.opt.Location)
	case JSON:
		w.buf = records.AppendJSON(w.buf, &r)
	default:
		w.buf = records.AppendRaw(w.buf, &r)
	}
	w.buf = append(w.buf, '\n')
	w.w.Write(w.buf) // errors surface at Flush
}

// Run applies every input of the trace in r (named name in errors) and
// writes the records to out. The first malformed line stops the replay: the
// inputs before it have been applied and written, nothing after it is.
func Run(r io.Reader, name string, out io.Writer, opt Options) (Result, error) {
	if opt.Location == nil {
		opt.Location = time.UTC
	}
	w := &writer{w: bufio.NewWriter(out), opt: opt}
	dec := NewDecoder(r, name)
	k := NewKernel(dec)
	e := engine.New(engine.Config{Sink: w, Kernel: k})
	var res Result
	var err error
	for {
		var in engine.Input
		in, err = dec.Next()
		if err != nil {
			break
		}
		res.Inputs++
		k.Reset()
		if aerr := e.Apply(in); aerr != nil {
			var refused *engine.Error
			if !errors.As(aerr, &refused) {
				err = fmt.Errorf("%s:%d: %w", name, dec.Line(), aerr)
				break
			}
			res.Refused++
		}
	}
	res.Stats = e.Stats()
	if ferr := w.w.Flush(); ferr != nil {
		return res, fmt.Errorf("replay: write: %w", ferr)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return res, err
}

// Kernel answers the engine as the kernel answered when the trace was
// recorded (the line's "kernel" field), and with success where the trace
// says nothing. Reset it before applying each input.
type Kernel struct {
	dec  *Decoder
	next int
}

// NewKernel answers from the lines dec reads.
func NewKernel(dec *Decoder) *Kernel { return &Kernel{dec: dec} }

// Reset starts on the answers of the line read last.
func (k *Kernel) Reset() { k.next = 0 }

func (k *Kernel) answer() error {
	rs := k.dec.Kernel()
	if k.next >= len(rs) {
		return nil
	}
	k.next++
	return rs[k.next-1].Err()
}

func (k *Kernel) Tag(engine.TaskRef, contid.ID) error { return k.answer() }
func (k *Kernel) Keep(engine.ContainerInfo) error     { return k.answer() }
func (k *Kernel) Forget(contid.ID) error              { return k.answer() }
