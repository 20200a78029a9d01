package engine

import (
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/records"
)

// The field order of every record is spec §5.1's; fields contid adds
// (name=, errno=, the *-nsid= unique namespace ids, the subject of
// SET_CAPCONTID) come where the comments say.

func plain(k, v string) records.Field { return records.Field{Key: k, Value: v} }

func u32(k string, v uint32) records.Field { return plain(k, strconv.FormatUint(uint64(v), 10)) }

func pidField(k string, v int32) records.Field { return plain(k, strconv.Itoa(int(v))) }

// untrusted writes a string the way the kernel writes comm= and exe=;
// an unknown (empty) value is (null).
func untrusted(k, v string) records.Field {
	if v == "" {
		return records.Field{Key: k, Value: "(null)", Enc: records.Null}
	}
	return records.Field{Key: k, Value: v, Enc: records.Untrusted}
}

func record(typ records.Type, now int64, fields []records.Field) records.Record {
	return records.Record{Type: typ, Stamp: records.StampAt(now, 0), Fields: fields}
}

func appendSubject(f []records.Field, pid int32, s Subject) []records.Field {
	return append(f,
		pidField("pid", pid),
		u32("uid", s.UID), u32("auid", s.AUID), u32("ses", s.Ses),
		untrusted("comm", s.Comm), untrusted("exe", s.Exe))
}

func appendResult(f []records.Field, err error) []records.Field {
	if err == nil {
		return append(f, plain("res", "success"))
	}
	f = append(f, plain("res", "failed"))
	if ee, ok := err.(*Error); ok {
		f = append(f, plain("errno", ErrnoName(ee.Errno)))
	}
	return f
}

// requested writes the requested contid: the number when it is one (the
// unset value included, as the ghak90 tests expect), else the caller's
// bytes, bounded and encoded so they cannot forge fields.
func requested(v string) records.Field {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		return plain("contid", strconv.FormatUint(n, 10))
	}
	if len(v) > 64 {
		v = v[:64]
	}
	if isDigits(v) { // an overflowing number: safe to write as it is
		return plain("contid", v)
	}
	return untrustedRequest("contid", v)
}

// untrustedRequest writes a value a caller sent that is not valid: at most
// 64 bytes of it, encoded so it cannot forge fields.
func untrustedRequest(key, v string) records.Field {
	if len(v) > 64 {
		v = v[:64]
	}
	return records.Field{Key: key, Value: v, Enc: records.Untrusted}
}

// subjectOf picks who a request's record describes: the given subject, else
// the orchestrator, else the caller.
func subjectOf(given *Subject, orch, caller *task, callerRef TaskRef) (int32, Subject) {
	var pid int32
	var s Subject
	switch {
	case orch != nil:
		pid, s = orch.tgid, orch.subj
	case caller != nil:
		pid, s = caller.tgid, caller.subj
	default:
		pid, s = callerRef.PID, Subject{AUID: UnsetID, Ses: UnsetID}
	}
	if given != nil {
		s = *given
	}
	return pid, s
}

func opid(tgt *task, target int32) records.Field {
	if tgt != nil {
		return pidField("opid", tgt.tgid)
	}
	return pidField("opid", target)
}

func (e *Engine) emitSet(ev *SetContid, tgt, caller, orch *task, old contid.Chain, err error) {
	f := make([]records.Field, 0, 13)
	f = append(f, plain("op", "set"), opid(tgt, ev.Target), requested(ev.Value), plain("old-contid", old.String()))
	if ev.Name != "" { // contid's addition: the runtime's container name
		f = append(f, records.Field{Key: "name", Value: ev.Name, Enc: records.Untrusted})
	}
	pid, s := subjectOf(ev.Subject, orch, caller, ev.Caller)
	f = appendSubject(f, pid, s)
	e.emit(record(records.ContainerOp, ev.Time, appendResult(f, err)))
}

// emitJoin writes op=join: opid= the moved process, contid= the container
// of the cgroup, old-contid= what it had, and the mover as subject.
func (e *Engine) emitJoin(ev *Join, t *task, old contid.Chain, err error) {
	f := make([]records.Field, 0, 12)
	f = append(f, plain("op", "join"), pidField("opid", t.tgid),
		plain("contid", strconv.FormatUint(uint64(ev.Contid), 10)), plain("old-contid", old.String()))
	var s Subject
	pid := ev.Mover
	if m := e.lookup(ev.Mover); m != nil {
		s, pid = m.subj, m.tgid
	}
	f = appendSubject(f, pid, s)
	e.emit(record(records.ContainerOp, ev.Time, appendResult(f, err)))
}

// emitDrop writes op=drop: contid= is the dropped ID, old-contid= its chain,
// and the subject is the task whose exit ended the container.
func (e *Engine) emitDrop(now int64, c *container, last *task) {
	f := make([]records.Field, 0, 11)
	f = append(f, plain("op", "drop"), pidField("opid", last.tgid),
		plain("contid", strconv.FormatUint(uint64(c.id), 10)), plain("old-contid", c.chain.String()))
	f = appendSubject(f, last.tgid, last.subj)
	e.emit(record(records.ContainerOp, now, appendResult(f, nil)))
}

func (e *Engine) emitCap(ev *SetCapcontid, tgt, caller, orch *task, old bool, err error) {
	f := make([]records.Field, 0, 12)
	f = append(f, opid(tgt, ev.Target), requestedCap(ev.Value), plain("old-capcontid", b01(old)))
	pid, s := subjectOf(ev.Subject, orch, caller, ev.Caller)
	f = appendSubject(f, pid, s) // contid's addition: who asked
	e.emit(record(records.SetCapcontid, ev.Time, appendResult(f, err)))
}

func requestedCap(v string) records.Field {
	if v == "0" || v == "1" {
		return plain("capcontid", v)
	}
	return untrustedRequest("capcontid", v)
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func nsValue(id ns.ID) string {
	if id.IsZero() {
		return "?"
	}
	return id.String()
}

func (e *Engine) emitNSInfo(now int64, tgt *task, c *container) {
	f := make([]records.Field, 0, 2+2*ns.NumTypes)
	f = append(f, pidField("opid", tgt.tgid), plain("contid", c.chain.String()))
	var ids ns.Set
	if tgt.set >= 0 {
		ids = e.sets[tgt.set].ids
	}
	for typ, id := range ids {
		f = append(f, plain(ns.Type(typ).String(), nsValue(id)))
	}
	for typ, id := range ids { // contid's addition: unique ids, never reused
		if id.Unique != 0 {
			f = append(f, plain(ns.Type(typ).String()+"-nsid", strconv.FormatUint(id.Unique, 10)))
		}
	}
	e.emit(record(records.NSInfo, now, f))
}

// emitNS writes NS_CREATE, NS_CHANGE or NS_DESTROY (which has no old-ns).
func (e *Engine) emitNS(now int64, typ records.Type, nt ns.Type, id, old ns.ID, pid int32, c *container) {
	f := make([]records.Field, 0, 7)
	f = append(f, plain("nstype", nt.String()), plain("ns", nsValue(id)))
	if id.Unique != 0 {
		f = append(f, plain("nsid", strconv.FormatUint(id.Unique, 10)))
	}
	if typ != records.NSDestroy {
		f = append(f, plain("old-ns", nsValue(old)))
		if old.Unique != 0 {
			f = append(f, plain("old-nsid", strconv.FormatUint(old.Unique, 10)))
		}
	}
	f = append(f, pidField("pid", pid), plain("contid", c.chainOrNil().String()))
	e.emit(record(typ, now, f))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
