// Package trace writes, reads and replays contid's traces: JSON lines,
// one engine input per line, so that any run of the engine, a live
// daemon's included (contid daemon --record), can be reproduced from a
// file. A run with kernel audit on also records the audit path's inputs
// (audit.go), which package replay runs through the pipeline.
// docs/trace.md describes the format.
//
// Encoding and decoding are pure: the Encoder writes inputs to an
// io.Writer, the Decoder reads them from an io.Reader; the first
// malformed line ends decoding with an error naming file:line and the
// reason. Run replays a trace through a fresh engine.
package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
)

// MaxLine bounds one trace line.
const MaxLine = 1 << 20

// Decoder reads inputs from a trace.
type Decoder struct {
	sc     *bufio.Scanner
	name   string
	line   int
	kernel []KernelResult
	sent   []bool
}

// NewDecoder reads the trace r; name is used in error messages.
func NewDecoder(r io.Reader, name string) *Decoder {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxLine)
	return &Decoder{sc: sc, name: name}
}

// Line returns the number of the last line read.
func (d *Decoder) Line() int { return d.line }

// Kernel returns the kernel's answers recorded with the last input read
// (its "kernel" field), in the order the engine asked.
func (d *Decoder) Kernel() []KernelResult { return d.kernel }

// Sent returns, for the last input read, whether each own record the
// engine wrote while applying it went into the kernel's stream (its
// "sent" field); records beyond the list were written locally.
func (d *Decoder) Sent() []bool { return d.sent }

// Next returns the next input, or io.EOF after the last one. A line of
// the audit path (see NextItem) is an error.
func (d *Decoder) Next() (engine.Input, error) {
	it, err := d.NextItem()
	if err != nil {
		return nil, err
	}
	in, ok := it.(engine.Input)
	if !ok {
		return nil, fmt.Errorf("%s:%d: %T: audit inputs need the audit replay", d.name, d.line, it)
	}
	return in, nil
}

// NextItem returns the next line's item: an engine.Input, or one of the
// audit path's AuditStart, Batch, Tick, Loss, Stop and Unsent; io.EOF
// after the last one.
func (d *Decoder) NextItem() (any, error) {
	for d.sc.Scan() {
		d.line++
		b := bytes.TrimSpace(d.sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		it, kernel, sent, err := decode(b)
		d.kernel, d.sent = kernel, sent
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.name, d.line, err)
		}
		return it, nil
	}
	if err := d.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", d.name, d.line+1, MaxLine)
		}
		return nil, fmt.Errorf("%s:%d: %w", d.name, d.line, err)
	}
	return nil, io.EOF
}

// op is one kind of trace line: its fields beyond op and time, and its
// decoder.
type op struct {
	fields []string
	decode func(f *fields, now int64) (any, error)
}

func nschange(o engine.NSOp) func(*fields, int64) (any, error) {
	return func(f *fields, now int64) (any, error) { return f.nschange(now, o) }
}

var ops = map[string]op{
	"task":      {[]string{"pid", "tgid", "ppid", "start", "parent_start", "born", "ns", "uid", "auid", "ses", "comm", "exe", "contid", "capcontid"}, (*fields).task},
	"container": {[]string{"id", "owner", "owner_start", "parent", "name"}, (*fields).container},
	"fork":      {[]string{"parent", "child", "tgid", "start", "ns", "contid", "uid", "auid", "ses", "comm", "exe", "clone_flags", "clone_parent"}, (*fields).fork},
	"exec":      {[]string{"pid", "old_tid", "comm", "exe", "uid", "auid", "ses", "ns"}, (*fields).exec},
	"exit": {[]string{"pid", "ns"}, func(f *fields, now int64) (any, error) {
		return f.done(engine.Exit{Time: now, PID: f.pid("pid", true), NS: f.ns()})
	}},
	"unshare":   {[]string{"pid", "ns"}, nschange(engine.Unshare)},
	"setns":     {[]string{"pid", "ns"}, nschange(engine.Setns)},
	"observe":   {[]string{"pid", "ns"}, nschange(engine.Observed)},
	"set":       {[]string{"caller", "caller_start", "for_parent", "cap", "target", "contid", "name", "uid", "auid", "ses", "comm", "exe"}, (*fields).set},
	"capcontid": {[]string{"caller", "caller_start", "for_parent", "cap", "target", "value", "uid", "auid", "ses", "comm", "exe"}, (*fields).capcontid},
	"join":      {[]string{"pid", "contid", "mover", "tagged"}, (*fields).join},
	"audit":     {[]string{"mode", "self", "timeout_ms", "filter"}, (*fields).auditStart},
	"batch":     {[]string{"records"}, (*fields).batch},
	"tick": {[]string{"idle"}, func(f *fields, now int64) (any, error) {
		return f.done(Tick{Time: now, Idle: f.bool("idle")})
	}},
	"loss": {[]string{"kind", "count", "extra", "sent"}, (*fields).loss},
	"stop": {nil, func(_ *fields, now int64) (any, error) { return Stop{Time: now}, nil }},
	"unsent": {[]string{"count"}, func(f *fields, now int64) (any, error) {
		return f.done(Unsent{Time: now, Count: int(f.required("count", 31))})
	}},
}

// line holds a decoded line's raw fields.
type line map[string]json.RawMessage

// Decode parses one trace line: an engine.Input or an audit path item.
func Decode(b []byte) (any, error) {
	it, _, _, err := decode(b)
	return it, err
}

func decode(b []byte) (any, []KernelResult, []bool, error) {
	l, kernel, sent, err := parseLine(b)
	if err != nil {
		return nil, nil, nil, err
	}
	it, err := l.input()
	return it, kernel, sent, err
}

// parseLine reads the JSON object of a line and its "kernel" and (a list)
// "sent" fields.
func parseLine(b []byte) (line, []KernelResult, []bool, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&l); err != nil {
		return nil, nil, nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, nil, nil, fmt.Errorf("trailing data after the JSON object")
	}
	var kernel []KernelResult
	if raw, ok := l["kernel"]; ok {
		if err := json.Unmarshal(raw, &kernel); err != nil {
			return nil, nil, nil, fmt.Errorf("\"kernel\" must be a list of {\"errno\":N,\"msg\":\"…\"}")
		}
		delete(l, "kernel")
	}
	var sent []bool
	if raw, ok := l["sent"]; ok && len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &sent); err != nil {
			return nil, nil, nil, fmt.Errorf("\"sent\" must be a list of true or false")
		}
		delete(l, "sent")
	}
	return l, kernel, sent, nil
}

// fields reads a line's fields and keeps the first error: a decoder
// reads each field it needs, in order, and looks at err once.
type fields struct {
	l   line
	err error
}

func (f *fields) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

func (f *fields) failf(format string, a ...any) { f.fail(fmt.Errorf(format, a...)) }

// done returns it, or the first error.
func (f *fields) done(it any) (any, error) {
	if f.err != nil {
		return nil, f.err
	}
	return it, nil
}

func (l line) input() (any, error) {
	f := &fields{l: l}
	name := f.str("op", true)
	if f.err != nil {
		return nil, f.err
	}
	o, ok := ops[name]
	if !ok {
		return nil, fmt.Errorf("unknown op %q", name)
	}
	for k := range l {
		if k != "op" && k != "time" && !slices.Contains(o.fields, k) {
			return nil, fmt.Errorf("op %q has no field %q", name, k)
		}
	}
	ts := f.str("time", true)
	if f.err != nil {
		return nil, f.err
	}
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, fmt.Errorf("time %q is not RFC 3339", ts)
	}
	return o.decode(f, tm.UnixNano())
}

func (f *fields) str(k string, required bool) string {
	raw, ok := f.l[k]
	if !ok {
		if required {
			f.failf("missing %q", k)
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.failf("%q must be a string", k)
	}
	return s
}

// uint reads an unsigned field of bits bits; ok says it is present.
func (f *fields) uint(k string, bits int) (v uint64, ok bool) {
	raw, ok := f.l[k]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(raw), 10, bits)
	if err != nil {
		f.failf("%q must be an unsigned %d-bit integer, not %s", k, bits, raw)
	}
	return v, true
}

// required reads an unsigned field that must be present.
func (f *fields) required(k string, bits int) uint64 {
	v, ok := f.uint(k, bits)
	if !ok {
		f.failf("missing %q", k)
	}
	return v
}

func (f *fields) pid(k string, required bool) int32 {
	v, ok := f.uint(k, 32)
	switch {
	case !ok && required:
		f.failf("missing %q", k)
	case ok && (v == 0 || v > math.MaxInt32):
		f.failf("%q must be a pid between 1 and %d", k, math.MaxInt32)
	}
	return int32(v)
}

func (f *fields) int(k string) int64 {
	raw, ok := f.l[k]
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		f.failf("%q must be a signed 64-bit integer, not %s", k, raw)
	}
	return v
}

func (f *fields) bool(k string) bool {
	raw, ok := f.l[k]
	if !ok {
		return false
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		f.failf("%q must be true or false", k)
	}
	return b
}

// text returns a string or a number field as written.
func (f *fields) text(k string) string {
	raw, ok := f.l[k]
	switch {
	case !ok:
		f.failf("missing %q", k)
		return ""
	case len(raw) > 0 && raw[0] == '"':
		return f.str(k, true)
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err != nil && !isDigits(string(raw)) {
		f.failf("%q must be a string or a number", k)
	}
	return string(raw)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func (f *fields) kernelContid() (bool, contid.ID) {
	raw, ok := f.l["contid"]
	if !ok {
		return false, 0
	}
	if string(raw) == "-1" || string(raw) == "null" {
		return true, contid.Unset
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		f.failf("\"contid\" must be a 64-bit unsigned number or -1, not %s", raw)
		return false, 0
	}
	return true, contid.ID(v)
}

func (f *fields) ns() ns.Set {
	var set ns.Set
	raw, ok := f.l["ns"]
	if !ok {
		return set
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		f.failf("\"ns\" must map namespace types to \"dev:inode\" strings")
		return set
	}
	for k, v := range m {
		typ, err := ns.ParseType(k)
		if err == nil {
			set[typ], err = ns.ParseID(v)
		}
		if err != nil {
			f.fail(err)
			return set
		}
	}
	return set
}

// subject reads uid auid ses comm exe; ok is false when none is present.
func (f *fields) subject() (s engine.Subject, ok bool) {
	s = engine.Subject{AUID: engine.UnsetID, Ses: engine.UnsetID}
	for _, n := range []struct {
		k string
		p *uint32
	}{{"uid", &s.UID}, {"auid", &s.AUID}, {"ses", &s.Ses}} {
		if v, has := f.uint(n.k, 32); has {
			*n.p, ok = uint32(v), true
		}
	}
	for _, n := range []struct {
		k string
		p *string
	}{{"comm", &s.Comm}, {"exe", &s.Exe}} {
		if _, has := f.l[n.k]; has {
			*n.p, ok = f.str(n.k, false), true
		}
	}
	return s, ok
}

// subjectRef is subject as a pointer, nil when none is present.
func (f *fields) subjectRef() *engine.Subject {
	if s, ok := f.subject(); ok {
		return &s
	}
	return nil
}

// start reads a start time, now when absent.
func (f *fields) start(k string, now int64) uint64 {
	if v, ok := f.uint(k, 64); ok {
		return v
	}
	return uint64(now)
}

// tgid is the line's "tgid", or pid when it has none (a process's main
// thread).
func (f *fields) tgid(pid int32) int32 {
	if _, ok := f.l["tgid"]; !ok {
		return pid
	}
	return f.pid("tgid", true)
}

func (f *fields) task(now int64) (any, error) {
	ev := engine.SeedTask{Time: now, PID: f.pid("pid", true)}
	ev.TGID = f.tgid(ev.PID)
	ev.PPID = f.pid("ppid", false)
	ev.Start = f.start("start", now)
	ev.ParentStart, _ = f.uint("parent_start", 64)
	ev.Born = f.int("born")
	ev.NS = f.ns()
	ev.Subject, _ = f.subject()
	ev.HasContid, ev.Contid = f.kernelContid()
	ev.Capcontid = f.bool("capcontid")
	return f.done(ev)
}

func (f *fields) container(now int64) (any, error) {
	ev := engine.SeedContainer{
		Time:  now,
		ID:    contid.ID(f.required("id", 64)),
		Owner: engine.TaskRef{PID: f.pid("owner", false)},
	}
	ev.Owner.Start, _ = f.uint("owner_start", 64)
	ev.Parent = contid.Unset
	if v, ok := f.uint("parent", 64); ok {
		ev.Parent = contid.ID(v)
	}
	ev.Name = f.str("name", false)
	return f.done(ev)
}

func (f *fields) fork(now int64) (any, error) {
	ev := engine.Fork{Time: now, Parent: f.pid("parent", true), Child: f.pid("child", true)}
	ev.ChildTGID = f.tgid(ev.Child)
	ev.Start = f.start("start", now)
	ev.NS = f.ns()
	ev.HasContid, ev.Contid = f.kernelContid()
	ev.CloneFlags, ev.HasCloneFlags = f.uint("clone_flags", 64)
	ev.CloneParent = f.bool("clone_parent")
	ev.Subject = f.subjectRef()
	return f.done(ev)
}

func (f *fields) exec(now int64) (any, error) {
	ev := engine.Exec{
		Time:   now,
		PID:    f.pid("pid", true),
		OldTID: f.pid("old_tid", false),
		Comm:   f.str("comm", false),
		Exe:    f.str("exe", false),
		NS:     f.ns(),
	}
	if s, ok := f.subject(); ok {
		ev.UID, ev.AUID, ev.Ses = s.UID, s.AUID, s.Ses
		_, u := f.l["uid"]
		_, a := f.l["auid"]
		_, se := f.l["ses"]
		ev.HasCreds = u || a || se
	}
	return f.done(ev)
}

func (f *fields) nschange(now int64, o engine.NSOp) (any, error) {
	ev := engine.NSChange{Time: now, Op: o}
	ev.PID = f.pid("pid", true)
	if _, ok := f.l["ns"]; !ok {
		f.failf("missing \"ns\"")
	}
	ev.NS = f.ns()
	return f.done(ev)
}

// request reads the fields set and capcontid share.
func (f *fields) request() (caller engine.TaskRef, forParent, capable bool, target int32, subj *engine.Subject) {
	caller.PID = f.pid("caller", true)
	caller.Start, _ = f.uint("caller_start", 64)
	return caller, f.bool("for_parent"), f.bool("cap"), f.pid("target", true), f.subjectRef()
}

func (f *fields) set(now int64) (any, error) {
	ev := engine.SetContid{Time: now}
	ev.Caller, ev.ForParent, ev.CallerCap, ev.Target, ev.Subject = f.request()
	ev.Value = f.text("contid")
	ev.Name = f.str("name", false)
	return f.done(ev)
}

func (f *fields) capcontid(now int64) (any, error) {
	ev := engine.SetCapcontid{Time: now}
	ev.Caller, ev.ForParent, ev.CallerCap, ev.Target, ev.Subject = f.request()
	ev.Value = f.text("value")
	return f.done(ev)
}

// join: a process moved into a cgroup bound to a container.
func (f *fields) join(now int64) (any, error) {
	ev := engine.Join{Time: now, PID: f.pid("pid", true), Mover: f.pid("mover", true)}
	v, ok := f.uint("contid", 64)
	switch {
	case f.err != nil:
	case !ok:
		f.failf("join needs contid")
	case contid.ID(v) == contid.Unset:
		f.failf("join: contid %d is the unset value", v)
	}
	ev.Contid = contid.ID(v)
	ev.Tagged = true
	if _, ok := f.l["tagged"]; ok {
		ev.Tagged = f.bool("tagged")
	}
	return f.done(ev)
}
