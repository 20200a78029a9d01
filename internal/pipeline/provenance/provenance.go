// Package provenance attaches container provenance to kernel audit events
// (spec §5.1–§5.2): after each record that describes a process with a
// contid it inserts a CONTAINER_ID record of the same event:
// `record=<index> contid=<chain>`.
//
// Which records describe a process:
//   - SYSCALL: the event's subject (pid=, with ppid= to tell apart two
//     processes that used one pid within the clocks' slack);
//   - OBJ_PID: each target (opid=);
//   - user-space records (1100–1199, 2100–2999) and AUDIT_USER (1005): their
//     sender (the header's pid=), except contid's own records (2900–2907),
//     which carry contid=. Any process with CAP_AUDIT_WRITE — a container's
//     root often has it — can send records of those types; after TrustOnly,
//     one not sent by contid is forged: it is counted in Stats.Forged,
//     rewritten by records.MarkForged to type CONTID_FORGED (2908) with
//     forged-type=<its type> first, so that no search for contid's types
//     finds it, and described as the user record it is, with its sender's
//     real chain;
//   - in an event without SYSCALL, the first record with a pid= field (LOGIN,
//     ANOM_*, SECCOMP, a standalone AVC).
//
// record= is the 1-based position of the described record in the event as
// written, CONTAINER_ID records included, so a reader of the log can count
// to it. A CONTAINER_ID never opens an event (stock ausearch would split it
// off), and kernel records pass through untouched.
//
// Each CONTAINER_ID also carries the event subject's pid= uid= auid= ses=,
// before record=. Stock ausearch (3.0.9) parses a record of the user range
// as a user message: one without pid= fails to parse and hides its whole
// event from -p, -ui, -ua, --session, -x and the rest, and its pid= becomes
// the event's pid. With the subject's values the event is found by every
// search exactly as without the CONTAINER_ID (measured: provenance_test.go).
//
// The package is pure: time comes from the records' stamps, state from the
// Attributor. An Annotator is not safe for concurrent use.
package provenance

import (
	"strconv"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/records"
)

// Attributor says which container chain a process had at a time (unix ns);
// ok is false when it cannot say. The engine implements it.
type Attributor interface {
	Attribute(pid int32, at int64, ppid int32) (chain contid.Chain, ok bool)
}

// Stats counts what the annotator saw.
type Stats struct {
	Events      uint64
	Described   uint64 // records that describe a process
	Contained   uint64 // … whose process had a contid: a CONTAINER_ID each
	Uncontained uint64 // … whose process had none
	Unknown     uint64 // … whose process the engine could not place
	BadPID      uint64 // … whose pid field did not parse
	Forged      uint64 // contid record types not sent by contid (see TrustOnly)
}

// Annotator inserts CONTAINER_ID records.
type Annotator struct {
	a      Attributor
	stats  Stats
	out    []records.Record
	chains []contid.Chain
	subj   contid.Chain
	pkt    []contid.Chain // a packet record's containers, in chains
	pstats PacketStats
	self   int32 // sender of contid's own records; 0 trusts every sender
	buf    []byte
}

// TrustOnly makes the Annotator take records of contid's types (2900–2907)
// as contid's own only when the kernel names pid as their sender (the
// header's pid=, which the kernel fills from the sending socket's
// credentials and a sender cannot choose). Without it (replaying a log)
// every such record is trusted.
func (an *Annotator) TrustOnly(pid int32) { an.self = pid }

// Own reports whether r is one of contid's own records: of contid's types,
// and sent by contid when TrustOnly was called.
func (an *Annotator) Own(r *records.Record) bool {
	if r.Type < records.ContainerOp || r.Type > records.ContidLoss {
		return false
	}
	if an.self == 0 {
		return true
	}
	v, ok := r.Get("pid") // the header's pid= comes before msg='…'
	return ok && v == strconv.Itoa(int(an.self))
}

// forged reports whether r has one of contid's types (CONTID_FORGED
// included, which contid never sends) without being contid's own. Only
// records from the kernel are checked (after TrustOnly); a replayed log is
// contid's output, whose forged records are marked already.
func (an *Annotator) forged(r *records.Record, own bool) bool {
	return an.self != 0 && !own && r.Type >= records.ContainerOp && r.Type <= records.ContidForged
}

// New returns an Annotator asking a.
func New(a Attributor) *Annotator { return &Annotator{a: a} }

// Subject returns the chain of the last annotated event's subject (the
// SYSCALL's pid, a user record's sender), nil when it had none: the
// container an event belongs to, as against the containers it touches.
func (an *Annotator) Subject() contid.Chain { return an.subj }

// Packet returns the chains of the containers of the network namespace
// where the last annotated event's packet record was logged, nil when it
// had none: the containers a packet event belongs to, each as a subject's
// would.
func (an *Annotator) Packet() []contid.Chain { return an.pkt }

// Stats returns the counters.
func (an *Annotator) Stats() Stats { return an.stats }

// Annotate returns the event with CONTAINER_ID records inserted, and the
// chains it attached (for filtering and routing). Both are valid until the
// next call.
func (an *Annotator) Annotate(ev []records.Record) ([]records.Record, []contid.Chain) {
	an.stats.Events++
	an.out = an.out[:0]
	an.chains = an.chains[:0]
	an.subj = nil
	an.pkt = nil
	hasSyscall := false
	for i := range ev {
		if ev[i].Type == records.Syscall {
			hasSyscall = true
			break
		}
	}
	subj := subject(ev, hasSyscall)
	subjectDone := false
	for i := range ev {
		rec := ev[i]
		own := an.Own(&rec)
		if an.forged(&rec, own) {
			an.stats.Forged++
			rec = records.MarkForged(rec)
		}
		an.out = append(an.out, rec)
		r := &rec
		key, ppidKey := describes(r, own, hasSyscall, subjectDone)
		if key == "" {
			if r.Type == records.NetfilterPkt && !hasSyscall {
				an.packet(r) // no process: the containers of its namespace
			}
			continue
		}
		if key == "pid" {
			subjectDone = true
		}
		an.stats.Described++
		pid, ok := field32(r, key)
		if !ok {
			an.stats.BadPID++
			continue
		}
		var ppid int32
		if ppidKey != "" {
			ppid, _ = field32(r, ppidKey)
		}
		at := r.Stamp.Sec*1e9 + int64(r.Stamp.Msec)*1e6
		chain, ok := an.a.Attribute(pid, at, ppid)
		switch {
		case !ok:
			an.stats.Unknown++
		case len(chain) == 0:
			an.stats.Uncontained++
		default:
			an.stats.Contained++
			an.chains = append(an.chains, chain)
			if key == "pid" {
				an.subj = chain
			}
			s := subj
			if s == nil {
				s = r
			}
			an.out = append(an.out, an.containerID(r.Stamp, r.Node, s, len(an.out), chain))
		}
	}
	return an.out, an.chains
}

// describes returns the field naming the process record r describes ("" if
// none) and the field of its parent, if the record has one.
func describes(r *records.Record, own, hasSyscall, subjectDone bool) (key, ppid string) {
	t := r.Type
	switch {
	case t == records.Syscall:
		return "pid", "ppid"
	case t == records.ObjPID:
		return "opid", ""
	case own:
		return "", ""
	case t == 1005, t >= 1100 && t <= 1199, t >= 2100 && t <= 2999:
		return "pid", ""
	case !hasSyscall && !subjectDone:
		if _, ok := r.Get("pid"); ok {
			return "pid", ""
		}
	}
	return "", ""
}

func field32(r *records.Record, key string) (int32, bool) {
	v, ok := r.Get(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n <= 0 {
		return 0, false
	}
	return int32(n), true
}

// subject returns the record naming the event's subject: its SYSCALL, or
// the first record with a pid= field.
func subject(ev []records.Record, hasSyscall bool) *records.Record {
	for i := range ev {
		if hasSyscall && ev[i].Type == records.Syscall {
			return &ev[i]
		}
		if !hasSyscall {
			if _, ok := ev[i].Get("pid"); ok {
				return &ev[i]
			}
		}
	}
	return nil
}

// subjectKeys are copied from the subject into each CONTAINER_ID.
var subjectKeys = [...]string{"pid", "uid", "auid", "ses"}

// containerID builds the CONTAINER_ID record for the record at 1-based
// position index of the output.
func (an *Annotator) containerID(stamp records.Stamp, node string, subj *records.Record, index int, chain contid.Chain) records.Record {
	f := make([]records.Field, 0, len(subjectKeys)+2)
	for _, k := range subjectKeys {
		if v, ok := subj.Get(k); ok && isNumber(v) {
			f = append(f, records.Field{Key: k, Value: v})
		}
	}
	an.buf = chain.Append(an.buf[:0])
	f = append(f, records.Field{Key: "record", Value: strconv.Itoa(index)}, records.Field{Key: "contid", Value: string(an.buf)})
	return records.Record{Node: node, Type: records.ContainerID, Stamp: stamp, Fields: f}
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
