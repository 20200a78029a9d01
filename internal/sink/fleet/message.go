package fleet

import (
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/pipeline"
	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/sink/output"
	"github.com/contid/contid/internal/sink/search"
)

// Msg is one message for the stream, as the spool keeps it.
type Msg struct {
	// ID is the message's Nats-Msg-Id: the event's identity (EventID),
	// and "/N" for the N-th further copy of an event that carries several
	// chains.
	ID      string
	Subject string
	// Data is the event's lines as the host log holds them, each ending
	// in a newline; with Encoder.JSON, after the event as one JSON object
	// (output.AppendEventJSON, the form of audit.json) and a newline. A
	// reader tells the two apart by the first byte ('{' or 't').
	Data []byte
}

// Encoder turns kept events into messages. It is for one goroutine.
type Encoder struct {
	Host string // the host's name, checked by CheckHost
	// Boot tells this host's boots apart (the kernel's boot_id); "" for
	// a replayed log, whose stamps carry the time that tells them apart.
	Boot string
	// JSON puts the event's JSON object before its lines (see Msg.Data).
	JSON   bool
	chains []contid.Chain
	buf    []byte
}

// Append appends the messages of one event to msgs: one under the
// subject of the event's first chain (or the host's subject), and one
// copy under each further distinct chain, so that a subject filter on any
// container the event names finds it. The chains are those that the
// local search finds in the event's lines (search.RecordChains), so both
// searches answer alike.
func (e *Encoder) Append(msgs []Msg, ev *pipeline.Event) []Msg {
	if len(ev.Records) == 0 {
		return msgs
	}
	id := e.EventID(ev)
	e.buf = e.buf[:0]
	if e.JSON {
		e.buf = append(output.AppendEventJSON(e.buf, ev), '\n')
	}
	for i := range ev.Records {
		e.buf = append(records.AppendRaw(e.buf, &ev.Records[i]), '\n')
	}
	data := slices.Clone(e.buf)
	e.chains = e.chains[:0]
	for _, c := range search.RecordChains(ev.Records) {
		if !slices.ContainsFunc(e.chains, c.Equal) {
			e.chains = append(e.chains, c)
		}
	}
	if len(e.chains) == 0 {
		return append(msgs, Msg{ID: id, Subject: string(AppendSubject(nil, e.Host, nil)), Data: data})
	}
	for i, c := range e.chains {
		m := Msg{ID: id, Subject: string(AppendSubject(nil, e.Host, c)), Data: data}
		if i > 0 {
			m.ID += "/" + strconv.Itoa(i)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// EventID is an event's identity: host:boot:SEC.MSEC:SERIAL of its first
// record, which the kernel (or contid, for its own records without kernel
// audit) gives each event once per boot. A Late part shares its event's
// stamp, and an event without a serial has none to tell it apart, so
// those add ":" and an FNV-1a hash of their lines.
func (e *Encoder) EventID(ev *pipeline.Event) string {
	st := ev.Records[0].Stamp
	b := make([]byte, 0, 96)
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
	return string(b)
}

// EventOf returns the event identity of a message id (without "/N").
func EventOf(msgID string) string {
	for i := len(msgID) - 1; i >= 0 && msgID[i] != ':'; i-- {
		if msgID[i] == '/' {
			return msgID[:i]
		}
	}
	return msgID
}
