package search

import (
	"strconv"
	"strings"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Query is a set of criteria. The zero Query matches every event. Every
// criterion that is set must hold; a list holds when any element does.
type Query struct {
	// Contids matches events that carry one of these containers: any
	// element of any chain (a parent finds its nested containers), or only
	// the innermost with Exact.
	Contids []contid.ID
	Exact   bool
	// Start and End bound the event's time in unix seconds, both included,
	// as ausearch compares -ts and -te. HasStart/HasEnd say they are set.
	Start, End       int64
	HasStart, HasEnd bool
	Types            []records.Type
	PIDs, PPIDs      []string // decimal
	UIDs, AUIDs      []string // decimal
	Keys             []string
	Exes             []string
	Syscalls         []string // decimal x86_64 numbers
	// Success is "", "yes" or "no".
	Success string
	Serials []uint64

	idText []string // Contids in decimal
	qterms queryTerms
}

// Losses returns q for contid's loss records (CONTID_LOSS) instead of q's
// containers and types: loss records name no container, and a report of
// q's containers must say what may be missing from it.
func (q Query) Losses() Query {
	l := q
	l.Contids = nil
	l.Types = []records.Type{records.ContidLoss}
	return l
}

// Match reports whether ev meets every criterion of q. It parses the
// event's fields when its stamp and text leave it possible.
func (q *Query) Match(ev *Event) bool {
	if q.HasStart && ev.Stamp.Sec < q.Start || q.HasEnd && ev.Stamp.Sec > q.End {
		return false
	}
	if len(q.Serials) > 0 && !has(q.Serials, ev.Stamp.Serial) {
		return false
	}
	if len(q.Contids) > 0 && !q.mayHoldContid(ev) {
		return false
	}
	ev.Parse()
	if len(q.Types) > 0 && !q.matchTypes(ev) {
		return false
	}
	if len(q.Contids) > 0 && !q.matchContid(ev) {
		return false
	}
	fieldCrit := []struct {
		key  string
		want []string
	}{{"pid", q.PIDs}, {"ppid", q.PPIDs}, {"uid", q.UIDs}, {"auid", q.AUIDs}, {"exe", q.Exes}, {"syscall", q.Syscalls}}
	for _, c := range fieldCrit {
		if len(c.want) > 0 && !anyField(ev, c.key, func(v string) bool { return hasStr(c.want, v) }) {
			return false
		}
	}
	if len(q.Keys) > 0 && !anyField(ev, "key", func(v string) bool {
		for _, k := range splitKeys(v) {
			if hasStr(q.Keys, k) {
				return true
			}
		}
		return false
	}) {
		return false
	}
	if q.Success != "" && !q.matchSuccess(ev) {
		return false
	}
	return true
}

// mayHoldContid: a chain is written in decimal, so an event that names a
// container holds its number in its text.
func (q *Query) mayHoldContid(ev *Event) bool {
	if len(q.idText) != len(q.Contids) {
		q.idText = q.idText[:0]
		for _, id := range q.Contids {
			q.idText = append(q.idText, strconv.FormatUint(uint64(id), 10))
		}
	}
	for _, l := range ev.Lines {
		for _, s := range q.idText {
			if hasNumber(l, s) {
				return true
			}
		}
	}
	return false
}

// hasNumber reports whether l holds the decimal n as a whole number, not
// as part of a longer one.
func hasNumber(l, n string) bool {
	for i := 0; ; {
		j := strings.Index(l[i:], n)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(n)
		if (j == 0 || !isDigit(l[j-1])) && (end == len(l) || !isDigit(l[end])) {
			return true
		}
		i = j + 1
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (q *Query) matchTypes(ev *Event) bool {
	for i := range ev.Records {
		if has(q.Types, ev.Records[i].Type) {
			return true
		}
	}
	return false
}

func (q *Query) matchContid(ev *Event) bool {
	for _, c := range Chains(ev) {
		if q.Exact {
			if len(c) > 0 && has(q.Contids, c[0]) {
				return true
			}
			continue
		}
		for _, id := range c {
			if has(q.Contids, id) {
				return true
			}
		}
	}
	return false
}

func (q *Query) matchSuccess(ev *Event) bool {
	for i := range ev.Records {
		r := &ev.Records[i]
		for j := range r.Fields {
			f := &r.Fields[j]
			if f.Enriched {
				continue
			}
			var v string
			switch f.Key {
			case "success":
				v = f.Value
			case "res":
				switch f.Value {
				case "success", "1":
					v = "yes"
				case "failed", "0":
					v = "no"
				}
			}
			if v != "" {
				return v == q.Success
			}
		}
	}
	return false
}

// Chains returns the container chains an event carries, innermost first:
// those of its CONTAINER_ID records, which contid writes itself (so a
// contid= inside a user record's msg='…', which any process with
// CAP_AUDIT_WRITE can send, is not one). An event without a CONTAINER_ID
// may be one of contid's own records (CONTAINER_OP, NS_*): their contid=
// and old-contid= give the chain of the container they are about. A
// forged record of those types sent from inside a container is followed
// by the CONTAINER_ID of its sender in contid's logs and so is known by
// its sender's chain only.
func Chains(ev *Event) []contid.Chain {
	ev.Parse()
	return chainsOf(ev.Records)
}

// RecordChains is Chains for the records of an event that is not read
// from a log (the fleet stream names its messages by them).
func RecordChains(recs []records.Record) []contid.Chain { return chainsOf(recs) }

// ContainerIDList returns the contid= list of a CONTAINER_ID record, as
// RecordChains reads it: when an event has a record with one, its chains
// are those lists' and nothing else.
func ContainerIDList(r *records.Record) (string, bool) {
	if r.Type != records.ContainerID {
		return "", false
	}
	return ownField(r, "contid", false)
}

func chainsOf(recs []records.Record) []contid.Chain {
	var out []contid.Chain
	found := false
	for i := range recs {
		r := &recs[i]
		if r.Type != records.ContainerID {
			continue
		}
		v, ok := ownField(r, "contid", false)
		if !ok {
			continue
		}
		found = true
		if l, err := contid.ParseList(v); err == nil {
			out = append(out, l...)
		}
	}
	if found {
		return out
	}
	for i := range recs {
		r := &recs[i]
		if r.Type < records.ContainerOp || r.Type > records.ContidLoss {
			continue
		}
		v, ok := ownField(r, "contid", true)
		if !ok {
			continue
		}
		if r.Type != records.ContainerOp {
			if l, err := contid.ParseList(v); err == nil {
				out = append(out, l...)
			}
			continue
		}
		var c contid.Chain
		if id, err := contid.Parse(v); err == nil {
			c = contid.Chain{id}
		}
		if ov, ok := ownField(r, "old-contid", true); ok {
			if old, err := contid.ParseChain(ov); err == nil {
				if len(c) > 0 && len(old) > 0 && old[0] == c[0] {
					old = old[1:]
				}
				c = append(c, old...)
			}
		}
		if len(c) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// ownField returns a field as contid writes it: not in the ENRICHED part,
// and inside msg='…' only when inMsg allows it.
func ownField(r *records.Record, key string, inMsg bool) (string, bool) {
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Key == key && !f.Enriched && (inMsg || !f.InMsg) {
			return f.Value, true
		}
	}
	return "", false
}

func anyField(ev *Event, key string, ok func(string) bool) bool {
	for i := range ev.Records {
		r := &ev.Records[i]
		for j := range r.Fields {
			f := &r.Fields[j]
			if f.Key == key && !f.Enriched && ok(f.Value) {
				return true
			}
		}
	}
	return false
}

// splitKeys splits a key= value: the kernel joins several rule keys
// with 0x01.
func splitKeys(v string) []string { return strings.Split(v, "\x01") }

// Keys returns the distinct keys of the event's records.
func Keys(ev *Event) []string {
	ev.Parse()
	return keysOf(ev.Records)
}

func keysOf(recs []records.Record) []string {
	var out []string
	for i := range recs {
		r := &recs[i]
		for j := range r.Fields {
			f := &r.Fields[j]
			if f.Key != "key" || f.Enriched {
				continue
			}
			for _, k := range splitKeys(f.Value) {
				if !hasStr(out, k) {
					out = append(out, k)
				}
			}
		}
	}
	return out
}

func has[T comparable](l []T, v T) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func hasStr(l []string, v string) bool { return has(l, v) }

// decimal normalises a number given on the command line.
func decimal(s string) (string, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatInt(v, 10), true
}
