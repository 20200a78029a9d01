package fleet

import (
	"bytes"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/sink/search"
)

// Msg is one message for the stream, as the spool keeps it: the events of
// one pipeline batch under one subject.
type Msg struct {
	// ID is the message's Nats-Msg-Id: the identity of its first event,
	// "/" and the place of its subject among that event's chains, "+" and
	// the number of events it holds (MsgID). The events of a subject
	// that follow an event are fixed, so the id names the message's
	// content: a batch spooled again alike gets the same ids.
	ID      string
	Subject string
	// Data is the batch form (AppendBatchHead, AppendFrame).
	Data []byte
	// N is the number of events in Data.
	N uint64
}

// The batch form of a message's data:
//
//	contid-batch 1 <batch> <n>\n
//	n frames: <index> <event-id> <size>\n <size bytes>
//
// <batch> is the identity of the pipeline batch the message is part of
// (its first event's identity, "+", its number of events); <index> is
// the event's place in that batch, so that a reader puts a batch's
// events, spread over the messages of its subjects, back in the host's
// order. The size bytes are the event's lines as the host log holds
// them, each ending in a newline; with Encoder.JSON, after the event as
// one JSON object (output.AppendEventJSON) and a newline.
const batchMagic = "contid-batch 1 "

// AppendBatchHead appends the first line of a message's data.
func AppendBatchHead(b []byte, batch string, n uint64) []byte {
	b = append(b, batchMagic...)
	b = append(b, batch...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, n, 10)
	return append(b, '\n')
}

// Frame is one event of a message.
type Frame struct {
	Index uint64 // place in the batch
	ID    string // the event's identity (EventID)
	Body  []byte // [JSON line] and lines
}

// ParseBatch reads a message's data: its batch identity and frames; ok is
// false unless the data is in the batch form throughout. The frames'
// bodies point into data.
func ParseBatch(data []byte, frames []Frame) (batch string, out []Frame, ok bool) {
	rest, ok := bytes.CutPrefix(data, []byte(batchMagic))
	if !ok {
		return "", frames, false
	}
	line, rest, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return "", frames, false
	}
	b, ns, ok := bytes.Cut(line, []byte{' '})
	n, err := strconv.ParseUint(string(ns), 10, 32)
	if !ok || err != nil || len(b) == 0 || n == 0 {
		return "", frames, false
	}
	for range n {
		line, r, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return "", frames, false
		}
		f := bytes.Fields(line)
		if len(f) != 3 {
			return "", frames, false
		}
		idx, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		size, err2 := strconv.ParseUint(string(f[2]), 10, 32)
		if err1 != nil || err2 != nil || size > uint64(len(r)) {
			return "", frames, false
		}
		frames = append(frames, Frame{Index: idx, ID: string(f[1]), Body: r[:size]})
		rest = r[size:]
	}
	if len(rest) != 0 {
		return "", frames, false
	}
	return string(b), frames, true
}

// batchEvents returns the n of a message's first line, 0 if there is none.
func batchEvents(data []byte) uint64 {
	rest, ok := bytes.CutPrefix(data, []byte(batchMagic))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte{'\n'})
	_, ns, _ := bytes.Cut(line, []byte{' '})
	n, _ := strconv.ParseUint(string(ns), 10, 32)
	return n
}

// DefaultMaxMsg is the size at which a message is closed and the batch's
// further events of its subject go to another: well below the servers'
// default max_payload (1 MiB).
const DefaultMaxMsg = 128 << 10

// Encoder gathers a pipeline batch's events into messages, one per
// subject (more when one would outgrow MaxMsg). It is for one goroutine.
type Encoder struct {
	Host string // the host's name, checked by CheckHost
	// Boot tells this host's boots apart (the kernel's boot_id); "" for
	// a replayed log, whose stamps carry the time that tells them apart.
	Boot string
	// JSON puts the event's JSON object before its lines (see Msg.Data).
	JSON   bool
	MaxMsg int // default DefaultMaxMsg

	chains []contid.Chain
	buf    []byte // the event's body
	subj   []byte
	id     []byte         // the event's identity
	out    []byte         // the data of Flush's messages
	ends   []int          // where each ends in out
	parts  []*part        // of the batch, in the order opened
	open   map[string]int // subject → its open part
	free   []*part
	n      uint64 // events in the batch
	first  []byte // the batch's first event's identity
}

// part is a message being gathered.
type part struct {
	subject string
	first   []byte // identity of its first event
	chain   int    // the subject's place among that event's chains
	n       uint64
	frames  []byte
}

// Add adds an event to the batch: to the message of the subject of each
// distinct chain the event names (the local search's chains,
// search.RecordChains, so both searches answer alike), or of the host's
// subject when it names none.
func (e *Encoder) Add(ev *pipeline.Event) { e.AddLines(ev, nil) }

// AddLines is Add given the event's lines (one per record, each ending
// in a newline, as records.AppendRaw formats them); nil formats them.
func (e *Encoder) AddLines(ev *pipeline.Event, lines []byte) {
	if len(ev.Records) == 0 {
		return
	}
	if e.open == nil {
		e.open = map[string]int{}
	}
	if e.MaxMsg <= 0 {
		e.MaxMsg = DefaultMaxMsg
	}
	e.buf = e.buf[:0]
	if e.JSON {
		e.buf = append(output.AppendEventJSON(e.buf, ev), '\n')
	}
	if lines != nil {
		e.buf = append(e.buf, lines...)
	} else {
		for i := range ev.Records {
			e.buf = append(records.AppendRaw(e.buf, &ev.Records[i]), '\n')
		}
	}
	e.chains = e.chains[:0]
	for _, c := range search.RecordChains(ev.Records) {
		if !slices.ContainsFunc(e.chains, c.Equal) {
			e.chains = append(e.chains, c)
		}
	}
	e.id = e.AppendEventID(e.id[:0], ev)
	if e.n == 0 {
		e.first = append(e.first[:0], e.id...)
	}
	idx := e.n
	e.n++
	for i := 0; i == 0 || i < len(e.chains); i++ {
		var c contid.Chain
		if len(e.chains) > 0 {
			c = e.chains[i]
		}
		e.subj = AppendSubject(e.subj[:0], e.Host, c)
		k, ok := e.open[string(e.subj)]
		if !ok || len(e.parts[k].frames)+len(e.buf) > e.MaxMsg && e.parts[k].n > 0 {
			// The subject's first event in the batch, or its message is
			// full: a new message.
			k = len(e.parts)
			e.open[string(e.subj)] = k
			e.parts = append(e.parts, e.part(string(e.subj), i, e.id))
		}
		p := e.parts[k]
		p.frames = strconv.AppendUint(p.frames, idx, 10)
		p.frames = append(p.frames, ' ')
		p.frames = append(p.frames, e.id...)
		p.frames = append(p.frames, ' ')
		p.frames = strconv.AppendInt(p.frames, int64(len(e.buf)), 10)
		p.frames = append(p.frames, '\n')
		p.frames = append(p.frames, e.buf...)
		p.n++
	}
}

func (e *Encoder) part(subject string, chain int, first []byte) *part {
	var p *part
	if n := len(e.free); n > 0 {
		p, e.free = e.free[n-1], e.free[:n-1]
		p.frames, p.n = p.frames[:0], 0
	} else {
		p = &part{}
	}
	p.subject, p.chain, p.first = subject, chain, append(p.first[:0], first...)
	return p
}

// Events is the number of events added since the last Flush.
func (e *Encoder) Events() uint64 { return e.n }

// Flush appends the batch's messages to msgs, in the order their subjects
// first appeared, and starts a new batch. The messages' Data is valid
// until the next Flush.
func (e *Encoder) Flush(msgs []Msg) []Msg {
	if e.n == 0 {
		return msgs
	}
	batch := string(e.first) + "+" + strconv.FormatUint(e.n, 10)
	// The messages' data one after the other in one buffer, kept for the
	// next batch: the spool copies it.
	e.out, e.ends = e.out[:0], e.ends[:0]
	from := len(msgs)
	for _, p := range e.parts {
		e.out = append(AppendBatchHead(e.out, batch, p.n), p.frames...)
		e.ends = append(e.ends, len(e.out))
		msgs = append(msgs, Msg{ID: MsgID(p.first, p.chain, p.n), Subject: p.subject, N: p.n})
		if cap(p.frames) <= 4*e.MaxMsg {
			e.free = append(e.free, p)
		}
	}
	off := 0
	for i, end := range e.ends { // e.out has stopped moving
		msgs[from+i].Data = e.out[off:end:end]
		off = end
	}
	if cap(e.out) > 64*e.MaxMsg {
		e.out = nil // a batch far above the usual: not kept
	}
	e.parts = e.parts[:0]
	clear(e.open)
	e.n = 0
	return msgs
}

// MsgID is the id of a message whose first event has identity first,
// under the chain-th of that event's subjects, holding n events.
func MsgID(first []byte, chain int, n uint64) string {
	b := make([]byte, 0, len(first)+16)
	b = append(b, first...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(chain), 10)
	b = append(b, '+')
	b = strconv.AppendUint(b, n, 10)
	return string(b)
}

// EventID is an event's identity (AppendEventID).
func (e *Encoder) EventID(ev *pipeline.Event) string {
	return string(e.AppendEventID(nil, ev))
}

// AppendEventID appends an event's identity: host:boot:SEC.MSEC:SERIAL
// of its first record, which the kernel (or contid, for its own records
// without kernel audit) gives each event once per boot. A Late part
// shares its event's stamp, and an event without a serial has none to
// tell it apart, so those add ":" and an FNV-1a hash of their lines.
func (e *Encoder) AppendEventID(b []byte, ev *pipeline.Event) []byte {
	st := ev.Records[0].Stamp
	b = append(b, e.Host...)
	b = append(b, ':')
	b = append(b, e.Boot...)
	b = append(b, ':')
	b = strconv.AppendInt(b, st.Sec, 10)
	b = append(b, '.')
	b = append(b, '0'+byte(st.Msec/100), '0'+byte(st.Msec/10%10), '0'+byte(st.Msec%10))
	b = append(b, ':')
	b = strconv.AppendUint(b, st.Serial, 10)
	if ev.Late || st.Serial == 0 {
		h := fnv.New64a()
		var line []byte
		for i := range ev.Records {
			line = append(records.AppendRaw(line[:0], &ev.Records[i]), '\n')
			h.Write(line)
		}
		b = append(b, ':')
		b = strconv.AppendUint(b, h.Sum64(), 16)
	}
	return b
}
