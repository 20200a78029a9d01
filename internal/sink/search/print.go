package search

import (
	"bufio"
	"io"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Format is how events are printed.
type Format int

const (
	// Raw writes each event's lines byte for byte, as read: the output is
	// a log ausearch reads.
	Raw Format = iota
	// Interpreted writes "----" and then each record as ausearch -i does.
	Interpreted
	// JSON writes one object per event:
	// {"contid":[[inner,…,outer],…],"records":[{…},…]}.
	JSON
)

// Printer writes events in a Format.
type Printer struct {
	w   *bufio.Writer
	f   Format
	loc *time.Location
	buf []byte
}

// NewPrinter returns a Printer writing to w; times of Interpreted are in
// loc.
func NewPrinter(w io.Writer, f Format, loc *time.Location) *Printer {
	return &Printer{w: bufio.NewWriterSize(w, 64<<10), f: f, loc: loc}
}

// Print writes one event.
func (p *Printer) Print(ev *Event) error {
	b := p.buf[:0]
	ev.Parse()
	switch p.f {
	case Raw:
		for _, l := range ev.Lines {
			b = append(b, l...)
		}
	case Interpreted:
		b = append(b, "----\n"...)
		for i := range ev.Records {
			b = records.AppendInterpreted(b, &ev.Records[i], p.loc)
			b = append(b, '\n')
		}
	case JSON:
		b = append(b, `{"contid":`...)
		b = contid.AppendChainsJSON(b, Chains(ev))
		b = append(b, `,"records":[`...)
		for i := range ev.Records {
			if i > 0 {
				b = append(b, ',')
			}
			b = records.AppendJSON(b, &ev.Records[i])
		}
		b = append(b, "]}\n"...)
	}
	p.buf = b
	_, err := p.w.Write(b)
	return err
}

// Flush writes what is buffered.
func (p *Printer) Flush() error { return p.w.Flush() }
