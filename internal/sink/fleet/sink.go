package fleet

import (
	"errors"
	"slices"

	"github.com/contid/contid/internal/pipeline"
)

// Sink is the stream route's writer: each event it is given becomes its
// messages (Encoder) in the spool, which the Publisher drains. It is for
// one goroutine (the daemon's core); Commit after each batch.
type Sink struct {
	// Name is the route's name in the rules (stream=NAME): Write takes
	// only events routed there. "" takes every event.
	Name  string
	enc   Encoder
	spool *Spool
	msgs  []Msg
	// Events counts the events given; Refused the messages the full
	// spool refused (also in the spool's DroppedNew).
	Events, Refused uint64
	errs            uint64
}

// NewSink returns a Sink writing to spool; json adds the JSON object to
// each message (Encoder.JSON).
func NewSink(name, host, boot string, json bool, spool *Spool) *Sink {
	return &Sink{Name: name, enc: Encoder{Host: host, Boot: boot, JSON: json}, spool: spool}
}

// Write spools the event's messages if it is routed to the sink.
func (s *Sink) Write(ev *pipeline.Event) {
	if s.Name != "" && !slices.Contains(ev.Routes.Streams, s.Name) {
		return
	}
	s.Events++
	s.msgs = s.enc.Append(s.msgs[:0], ev)
	for i := range s.msgs {
		if err := s.spool.Append(&s.msgs[i]); errors.Is(err, ErrFull) {
			s.Refused++
		} else if err != nil {
			s.errs++
		}
	}
}

// Commit writes what was spooled since the last Commit, for the publisher
// to send.
func (s *Sink) Commit() error { return s.spool.Flush() }
