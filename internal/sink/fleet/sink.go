package fleet

import (
	"errors"
	"slices"

	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/sink/output"
)

// Sink is the stream route's writer: it gathers the events it is given
// into the batch's messages (Encoder), which Commit puts in the spool
// for the Publisher to send. It is for one goroutine (the daemon's
// core); Commit after each batch.
type Sink struct {
	// Name is the route's name in the rules (stream=NAME): Write takes
	// only events routed there. "" takes every event.
	Name string
	// Registry, when set, notes the events that register and drop
	// containers, routed here or not.
	Registry *Registry
	// Places, when set, is where the output's host blocks landed (the
	// output's HostPlacer and the host log's Observer): messages whose
	// events the host log holds are spooled in the held form.
	Places *Places
	enc    Encoder
	spool  *Spool
	msgs   []Msg // the last Commit's
	// Events counts the events given; Refused the events in messages the
	// full spool refused (also in the spool's DroppedNew).
	Events, Refused uint64
	errs            uint64
}

// NewSink returns a Sink writing to spool; json adds the JSON object to
// each event (Encoder.JSON).
func NewSink(name, host, boot string, json bool, spool *Spool) *Sink {
	return &Sink{Name: name, enc: Encoder{Host: host, Boot: boot, JSON: json}, spool: spool}
}

// Write adds the event to the batch if it is routed to the sink.
func (s *Sink) Write(ev *pipeline.Event) { s.WriteLines(ev, nil, output.HostSpan{}) }

// WriteLines is Write given the event's lines as the logs got them
// (output.Output.Lines), so they are not formatted again (nil formats
// them), and where the output put them for the host log
// (output.Output.Span): with Places, the spool then refers to the host
// log for them instead of writing them again.
func (s *Sink) WriteLines(ev *pipeline.Event, lines []byte, at output.HostSpan) {
	if s.Registry != nil && ev.Life != 0 && len(ev.Records) > 0 {
		s.Registry.Note(ev, s.enc.EventID(ev))
	}
	if s.Name != "" && !slices.Contains(ev.Routes.Streams, s.Name) {
		return
	}
	s.Events++
	s.enc.AddLines(ev, lines, at)
}

// Commit spools the batch's messages (each whole, in the held form when
// Places knows where all its events' lines are) and writes them for the
// publisher to send.
func (s *Sink) Commit() error {
	s.msgs = s.enc.FlushForms(s.msgs[:0], s.Places, s.spool.forms())
	if s.Places != nil {
		defer s.Places.Forget() // after the spool holds the files
	}
	for i := range s.msgs {
		if err := s.spool.Append(&s.msgs[i]); errors.Is(err, ErrFull) {
			s.Refused += s.msgs[i].N
		} else if err != nil {
			s.errs++
		}
	}
	return s.spool.Flush()
}
