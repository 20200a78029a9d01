package fleet

import (
	"bytes"
	"encoding/binary"
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
	// held: Data is in the held form (heldForm), its events' lines in
	// log, the host log file they were written to (key, after a restart).
	held bool
	log  *logFile
	key  fileKey
	// inline is the message's batch form, as the encoder made it, at
	// formAt in the buffer it was made in: the spool keeps it in memory
	// for the publisher.
	inline []byte
	formAt int
}

// The held form of a message's data, which the spool keeps in place of
// the batch form when the host log holds every event's lines:
//
//	u32 length, the batch form's first line
//	per event: u32 length, the event's frame line (and JSON line); u64
//	offset and u32 length of its lines in the log file
//
// The publisher reads the lines back (Spool.resolve), checks that they
// are the event's (whole lines, each with the event's stamp, which the
// frame line's identity holds) and sends the batch form, byte for byte
// what the encoder makes for the spool without the host log.

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

	chains   []contid.Chain
	arena    []byte // the batch's event bodies, each once
	subj     []byte
	subjs    []string
	hostSubj []string            // the host's subject
	key      []byte              // the event's CONTAINER_ID lists (subjectsOf)
	cache    map[string][]string // CONTAINER_ID lists → subjects
	id       []byte              // the event's identity
	out      []byte              // the held forms of Flush's messages
	inl      []byte              // their batch forms (Flush)
	ends     []int               // where each ends in out
	parts    []*part             // of the batch, in the order opened
	open     map[string]int      // subject → its open part
	free     []*part
	n        uint64 // events in the batch
	first    []byte // the batch's first event's identity
	head     []byte
}

// part is a message being gathered.
type part struct {
	subject string
	first   []byte // identity of its first event
	chain   int    // the subject's place among that event's chains
	n       uint64
	size    int    // of its frames in the batch form
	frames  []byte // the frame lines
	refs    []slot // one per frame
	held    bool   // every frame's lines are in the host log
}

// slot is an event of a part: its frame line ends at hdr in the part's
// frames (and starts where the one before ends); its body is the
// encoder's arena[body:end], its lines from lines; with the host log's
// block and offset of those lines (at in the log file, once the block's
// place is known).
type slot struct {
	hdr              int
	body, lines, end int
	block            uint64
	off              int
	at               int64
}

// Add adds an event to the batch: to the message of the subject of each
// distinct chain the event names (the local search's chains,
// search.RecordChains, so both searches answer alike), or of the host's
// subject when it names none.
func (e *Encoder) Add(ev *pipeline.Event) { e.AddLines(ev, nil, output.HostSpan{}) }

// AddLines is Add given the event's lines (one per record, each ending
// in a newline, as records.AppendRaw formats them; nil formats them) and
// where the output put them among the host log's blocks (Len 0: not
// there).
func (e *Encoder) AddLines(ev *pipeline.Event, lines []byte, at output.HostSpan) {
	if len(ev.Records) == 0 {
		return
	}
	if e.open == nil {
		e.open = map[string]int{}
	}
	if e.MaxMsg <= 0 {
		e.MaxMsg = DefaultMaxMsg
	}
	body := len(e.arena)
	if e.JSON {
		e.arena = append(output.AppendEventJSON(e.arena, ev), '\n')
	}
	linesAt := len(e.arena)
	if lines != nil {
		e.arena = append(e.arena, lines...)
	} else {
		for i := range ev.Records {
			e.arena = append(records.AppendRaw(e.arena, &ev.Records[i]), '\n')
		}
	}
	end := len(e.arena)
	held := lines != nil && at.Len == len(lines) && at.Len > 0
	e.id = e.AppendEventID(e.id[:0], ev)
	if e.n == 0 {
		e.first = append(e.first[:0], e.id...)
	}
	idx := e.n
	e.n++
	for i, subj := range e.subjectsOf(ev) {
		k, ok := e.open[subj]
		if !ok || e.parts[k].size+end-body > e.MaxMsg && e.parts[k].n > 0 {
			// The subject's first event in the batch, or its message is
			// full: a new message.
			k = len(e.parts)
			e.open[subj] = k
			e.parts = append(e.parts, e.part(subj, i, e.id))
		}
		p := e.parts[k]
		from := len(p.frames)
		p.frames = strconv.AppendUint(p.frames, idx, 10)
		p.frames = append(p.frames, ' ')
		p.frames = append(p.frames, e.id...)
		p.frames = append(p.frames, ' ')
		p.frames = strconv.AppendInt(p.frames, int64(end-body), 10)
		p.frames = append(p.frames, '\n')
		p.refs = append(p.refs, slot{hdr: len(p.frames), body: body, lines: linesAt, end: end, block: at.Block, off: at.Off})
		p.held = p.held && held
		p.size += len(p.frames) - from + end - body
		p.n++
	}
}

// subjectsOf returns the subjects of the event's distinct chains, or the
// host's subject when it names none. The subjects of events with
// CONTAINER_ID records are kept by those records' lists, which alone make
// their chains (search.ContainerIDList): a host's events name a few
// chains over and over.
func (e *Encoder) subjectsOf(ev *pipeline.Event) []string {
	e.key = e.key[:0]
	for i := range ev.Records {
		if v, ok := search.ContainerIDList(&ev.Records[i]); ok {
			e.key = append(append(e.key, v...), 0)
		}
	}
	if len(e.key) > 0 {
		if s, ok := e.cache[string(e.key)]; ok {
			return s
		}
	}
	e.chains = e.chains[:0]
	for _, c := range search.RecordChains(ev.Records) {
		if !slices.ContainsFunc(e.chains, c.Equal) {
			e.chains = append(e.chains, c)
		}
	}
	if len(e.chains) == 0 {
		// The host's events: most of a host's events, often.
		if e.hostSubj == nil {
			e.hostSubj = []string{string(AppendSubject(nil, e.Host, nil))}
		}
		return e.hostSubj
	}
	e.subjs = e.subjs[:0]
	for _, c := range e.chains {
		e.subjs = append(e.subjs, string(AppendSubject(e.subj[:0], e.Host, c)))
	}
	if len(e.key) > 0 {
		if e.cache == nil || len(e.cache) >= subjectCache {
			e.cache = map[string][]string{}
		}
		s := slices.Clone(e.subjs)
		e.cache[string(e.key)] = s
		return s
	}
	return e.subjs
}

// subjectCache bounds the chains the encoder keeps (then starts anew).
const subjectCache = 4096

func (e *Encoder) part(subject string, chain int, first []byte) *part {
	var p *part
	if n := len(e.free); n > 0 {
		p, e.free = e.free[n-1], e.free[:n-1]
		p.frames, p.refs = p.frames[:0], p.refs[:0]
	} else {
		p = &part{}
	}
	p.subject, p.chain, p.first = subject, chain, append(p.first[:0], first...)
	p.n, p.size, p.held = 0, 0, true
	return p
}

// Events is the number of events added since the last Flush.
func (e *Encoder) Events() uint64 { return e.n }

// Flush appends the batch's messages to msgs, in the order their subjects
// first appeared, and starts a new batch. The messages' Data is valid
// until the next Flush. Given places, a message whose events' lines all
// landed in one host log file is in the held form.
func (e *Encoder) Flush(msgs []Msg, places *Places) []Msg {
	e.inl = e.inl[:0]
	return e.FlushForms(msgs, places, &e.inl)
}

// FlushForms is Flush with every message's batch form (Msg.inline; the
// Data too of a message not held) appended to *forms, where the spool
// keeps them for the publisher (Spool.forms), instead of the encoder's own
// buffer.
func (e *Encoder) FlushForms(msgs []Msg, places *Places, forms *[]byte) []Msg {
	if e.n == 0 {
		return msgs
	}
	batch := string(e.first) + "+" + strconv.FormatUint(e.n, 10)
	// The held forms one after the other in one buffer, kept for the
	// next batch: the spool copies them.
	e.out, e.ends = e.out[:0], e.ends[:0]
	from := len(msgs)
	for _, p := range e.parts {
		m := Msg{ID: MsgID(p.first, p.chain, p.n), Subject: p.subject, N: p.n, formAt: len(*forms)}
		e.head = AppendBatchHead(e.head[:0], batch, p.n)
		*forms = e.appendBatch(*forms, p)
		m.inline = (*forms)[m.formAt:] // for its length; set again below
		if lf, ok := e.hold(p, places); ok {
			e.out = e.appendHeld(e.out, p)
			m.held, m.log, m.key = true, lf, lf.key
		}
		e.ends = append(e.ends, len(e.out))
		msgs = append(msgs, m)
		if cap(p.frames) <= 4*e.MaxMsg {
			e.free = append(e.free, p)
		}
	}
	// The buffers have stopped moving: the messages point into them.
	off := 0
	for i, end := range e.ends {
		m := &msgs[from+i]
		to := m.formAt + len(m.inline)
		m.inline = (*forms)[m.formAt:to:to]
		if m.held {
			m.Data = e.out[off:end:end]
		} else {
			m.Data = m.inline
		}
		off = end
	}
	if cap(e.out) > 64*e.MaxMsg {
		e.out = nil // a batch far above the usual: not kept
	}
	if cap(e.inl) > 64*e.MaxMsg {
		e.inl = nil
	}
	if cap(e.arena) > 64*e.MaxMsg {
		e.arena = nil
	}
	e.arena = e.arena[:0]
	e.parts = e.parts[:0]
	clear(e.open)
	e.n = 0
	return msgs
}

// appendBatch appends p's data in the batch form.
func (e *Encoder) appendBatch(b []byte, p *part) []byte {
	b = append(b, e.head...)
	hdr := 0
	for _, f := range p.refs {
		b = append(b, p.frames[hdr:f.hdr]...)
		b = append(b, e.arena[f.body:f.end]...)
		hdr = f.hdr
	}
	return b
}

// appendHeld appends p's data in the held form.
func (e *Encoder) appendHeld(b []byte, p *part) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.head)))
	b = append(b, e.head...)
	hdr := 0
	for _, f := range p.refs {
		b = binary.LittleEndian.AppendUint32(b, uint32(f.hdr-hdr+f.lines-f.body))
		b = append(b, p.frames[hdr:f.hdr]...)
		b = append(b, e.arena[f.body:f.lines]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(f.at))
		b = binary.LittleEndian.AppendUint32(b, uint32(f.end-f.lines))
		hdr = f.hdr
	}
	return b
}

// hold returns the log file holding every frame of p, if the blocks of
// them all landed whole in one file, and sets each frame's offset in it.
func (e *Encoder) hold(p *part, places *Places) (*logFile, bool) {
	if places == nil || !p.held || len(p.refs) == 0 {
		return nil, false
	}
	var (
		lf    *logFile
		block uint64
		base  int64
	)
	for i := range p.refs {
		f := &p.refs[i]
		if lf == nil || f.block != block {
			l, off, ok := places.where(f.block)
			if !ok || lf != nil && l != lf {
				return nil, false
			}
			lf, block, base = l, f.block, off
		}
		f.at = base + int64(f.off)
	}
	return lf, true
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
