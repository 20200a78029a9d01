// Package pipeline is contid's audit record path (spec §5–§6, §8): records
// of the kernel's stream in, grouped into events (reassembly), given their
// container provenance (provenance), filtered and routed (rules), out to a
// Writer — with every loss on the way reported, never dropped silently.
//
// The package is pure and replayable: no goroutines, clock or I/O. Time is
// the records' own (and Advance); state comes from the Attributor. The same
// input gives the same output, so a recorded log replays to the same result
// (the golden tests, the throughput benchmark).
// A Pipeline is for one goroutine.
package pipeline

import (
	"slices"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline/provenance"
	"github.com/contid/contid/internal/pipeline/reassembly"
	"github.com/contid/contid/internal/pipeline/rules"
	"github.com/contid/contid/internal/records"
)

// Event is one kept event, ready to write.
type Event struct {
	// Records are the event's records with CONTAINER_ID records inserted;
	// kernel records keep their Raw line, so they are written byte for byte.
	Records []records.Record
	// Chains are the contid chains the event carries, the subject's first
	// when it has one.
	Chains []contid.Chain
	// Container is the contid whose own log the event belongs to: the
	// innermost contid of the subject, or for contid's own records the
	// contid they are about; contid.Unset when none.
	Container contid.ID
	// Also are further contids whose own logs the event belongs to: a
	// packet record's event belongs to every container of the namespace
	// where it was logged (Container is the first of them).
	Also   []contid.ID
	Routes rules.Routes
	// Life is what contid's own record in the event did to Container:
	// registered it (a successful op=set) or dropped it (op=drop).
	Life Life
	// Incomplete and Late are as in reassembly.Event.
	Incomplete, Late bool
}

// Life is a step in a container's life that an event of contid's own
// records marks, for the writers of per-container logs.
type Life uint8

const (
	Registered Life = iota + 1 // op=set res=success: the container exists
	Dropped                    // op=drop: the container ended
)

// Writer receives what the pipeline keeps and what it knows was lost.
// Records, Chains and Also of an Event are valid only during the call.
type Writer interface {
	Write(ev *Event)
	// Lost reports n units of loss of one kind (see Loss).
	Lost(n uint64, why Loss)
}

// Loss names what was lost; its String is the kind= of a CONTID_LOSS
// record. The reassembler's kinds keep their values.
type Loss uint8

const (
	// Gap: kernel serials never received.
	Gap = Loss(reassembly.Gap)
	// Incomplete: an event delivered without its end.
	Incomplete = Loss(reassembly.Incomplete)
	// Late: records that came after their event; they are still written,
	// as a part of their own.
	Late = Loss(reassembly.Late)
	// Discontinuity: the kernel's serial counter jumped.
	Discontinuity = Loss(reassembly.Discontinuity)
	// Malformed: records that could not be parsed; skipped.
	Malformed = Discontinuity + 1
)

func (l Loss) String() string {
	if l == Malformed {
		return "malformed"
	}
	return reassembly.Loss(l).String()
}

// Config configures a Pipeline.
type Config struct {
	Reassembly reassembly.Config
	// Rules decide what is dropped and where the rest goes; nil keeps
	// everything with the default routes (host and container).
	Rules      *rules.Set
	Attributor provenance.Attributor
	Writer     Writer
	// Self is contid's pid when records come live from the kernel: only
	// records it sent count as contid's own (provenance.TrustOnly). 0
	// trusts every record of contid's types (a replayed log).
	Self int32
}

// Stats counts what the pipeline saw.
type Stats struct {
	Received   uint64 // records pushed
	Malformed  uint64 // … that did not parse (skipped)
	Events     uint64 // events (and Late parts) decided
	Dropped    uint64 // events dropped by a rule
	Kept       uint64 // events handed to the Writer
	Reassembly reassembly.Stats
	Provenance provenance.Stats
	Packets    provenance.PacketStats
}

// Pipeline groups, annotates, decides and hands on.
type Pipeline struct {
	cfg   Config
	re    *reassembly.Reassembler
	an    *provenance.Annotator
	view  rules.View
	ev    Event
	also  []contid.ID
	stats Stats
}

// New returns a Pipeline.
func New(cfg Config) *Pipeline {
	p := &Pipeline{cfg: cfg, an: provenance.New(cfg.Attributor)}
	p.an.TrustOnly(cfg.Self)
	p.re = reassembly.New(cfg.Reassembly, sink{p})
	return p
}

// PushMessage adds a record as the kernel sends it over netlink. A record
// that does not parse is counted, reported as Malformed and skipped.
func (p *Pipeline) PushMessage(t uint16, payload []byte) error {
	p.stats.Received++
	r, err := records.ParseMessage(records.Type(t), payload)
	if err != nil {
		p.malformed()
		return err
	}
	p.re.Push(r)
	return nil
}

// PushLine adds a record as an auditd log line (auditd's plugin feed, a
// recorded log). A line that does not parse is counted, reported as
// Malformed and skipped.
func (p *Pipeline) PushLine(line string) error {
	p.stats.Received++
	r, err := records.ParseLine(line)
	if err != nil {
		p.malformed()
		return err
	}
	p.re.Push(r)
	return nil
}

// Push adds a parsed record.
func (p *Pipeline) Push(r records.Record) {
	p.stats.Received++
	p.re.Push(r)
}

func (p *Pipeline) malformed() {
	p.stats.Malformed++
	p.cfg.Writer.Lost(1, Malformed)
}

// EndRead ends the event of a record that stands alone (NETFILTER_PKT, a
// user message) at the end of a read, so it is written in arrival order;
// see reassembly.Reassembler.EndRead.
func (p *Pipeline) EndRead() { p.re.EndRead() }

// Advance moves event time to unixMilli when the stream is idle; see
// reassembly.Reassembler.Advance.
func (p *Pipeline) Advance(unixMilli int64) { p.re.Advance(unixMilli) }

// Flush delivers every event in flight (at shutdown, at the end of a log).
func (p *Pipeline) Flush() { p.re.Flush() }

// Stats returns the counters.
func (p *Pipeline) Stats() Stats {
	s := p.stats
	s.Reassembly = p.re.Stats()
	s.Provenance = p.an.Stats()
	s.Packets = p.an.PacketStats()
	return s
}

type sink struct{ p *Pipeline }

func (s sink) Event(e reassembly.Event) { s.p.event(e) }

func (s sink) Lost(n uint64, why reassembly.Loss) { s.p.cfg.Writer.Lost(n, Loss(why)) }

func (p *Pipeline) event(e reassembly.Event) {
	p.stats.Events++
	recs, chains := p.an.Annotate(e.Records)
	container := contid.Unset
	var life Life
	p.also = p.also[:0]
	if subj := p.an.Subject(); len(subj) > 0 {
		container = subj[0]
	} else if pk := p.an.Packet(); len(pk) > 0 {
		container = pk[0][0]
		for _, c := range pk[1:] {
			if c[0] != container && !slices.Contains(p.also, c[0]) {
				p.also = append(p.also, c[0])
			}
		}
	} else if id, l, ok := p.own(recs); ok {
		container, life = id, l
		chains = append(chains, contid.Chain{id})
	}
	p.view.Fill(recs, chains)
	d := rules.Decision{Routes: rules.Routes{Dest: rules.Host | rules.Container}, Rule: -1}
	if p.cfg.Rules != nil {
		d = p.cfg.Rules.Decide(p.view)
	}
	if d.Drop {
		p.stats.Dropped++
		return
	}
	p.stats.Kept++
	p.ev = Event{
		Records: recs, Chains: chains, Container: container, Also: p.also, Routes: d.Routes, Life: life,
		Incomplete: e.Incomplete, Late: e.Late,
	}
	p.cfg.Writer.Write(&p.ev)
}

// own returns the contid a successful contid record of the event is about
// (CONTAINER_OP, NS_*, SET_CAPCONTID carry contid=), so that a container's
// own log holds its registration and its end, and the step of its life a
// CONTAINER_OP marks. Forged records (not sent by contid) never route: a
// container must not write into another's log.
func (p *Pipeline) own(recs []records.Record) (contid.ID, Life, bool) {
	for i := range recs {
		r := &recs[i]
		if r.Type == records.ContainerID || !p.an.Own(r) {
			continue
		}
		if res, ok := r.Get("res"); ok && res != "success" {
			continue
		}
		v, ok := r.Get("contid")
		if !ok {
			continue
		}
		c, err := contid.ParseChain(v)
		if err != nil || len(c) == 0 || c[0] == contid.Unset {
			continue
		}
		var l Life
		if r.Type == records.ContainerOp {
			switch op, _ := r.Get("op"); op {
			case "set":
				l = Registered
			case "drop":
				l = Dropped
			}
		}
		return c[0], l, true
	}
	return contid.Unset, 0, false
}
