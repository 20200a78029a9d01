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

// allowed lists each op's fields beyond op and time.
var allowed = map[string][]string{
	"task":      {"pid", "tgid", "ppid", "start", "parent_start", "born", "ns", "uid", "auid", "ses", "comm", "exe", "contid", "capcontid"},
	"container": {"id", "owner", "owner_start", "parent", "name"},
	"fork":      {"parent", "child", "tgid", "start", "ns", "contid", "uid", "auid", "ses", "comm", "exe", "clone_flags", "clone_parent"},
	"exec":      {"pid", "old_tid", "comm", "exe", "uid", "auid", "ses", "ns"},
	"exit":      {"pid", "ns"},
	"unshare":   {"pid", "ns"},
	"setns":     {"pid", "ns"},
	"observe":   {"pid", "ns"},
	"set":       {"caller", "caller_start", "for_parent", "cap", "target", "contid", "name", "uid", "auid", "ses", "comm", "exe"},
	"capcontid": {"caller", "caller_start", "for_parent", "cap", "target", "value", "uid", "auid", "ses", "comm", "exe"},
	"join":      {"pid", "contid", "mover", "tagged"},
	"audit":     {"mode", "self", "timeout_ms", "filter"},
	"batch":     {"records"},
	"tick":      {"idle"},
	"loss":      {"kind", "count", "extra", "sent"},
	"stop":      {},
	"unsent":    {"count"},
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

func (l line) input() (any, error) {
	op, err := l.str("op", true)
	if err != nil {
		return nil, err
	}
	keys, ok := allowed[op]
	if !ok {
		return nil, fmt.Errorf("unknown op %q", op)
	}
	for k := range l {
		if k != "op" && k != "time" && !contains(keys, k) {
			return nil, fmt.Errorf("op %q has no field %q", op, k)
		}
	}
	ts, err := l.str("time", true)
	if err != nil {
		return nil, err
	}
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, fmt.Errorf("time %q is not RFC 3339", ts)
	}
	now := tm.UnixNano()
	switch op {
	case "task":
		return l.task(now)
	case "container":
		return l.container(now)
	case "fork":
		return l.fork(now)
	case "exec":
		return l.exec(now)
	case "exit":
		pid, err := l.pid("pid", true)
		if err != nil {
			return nil, err
		}
		set, err := l.ns()
		return engine.Exit{Time: now, PID: pid, NS: set}, err
	case "unshare", "setns", "observe":
		return l.nschange(now, op)
	case "set":
		return l.set(now)
	case "capcontid":
		return l.capcontid(now)
	case "join":
		return l.join(now)
	case "audit":
		return l.auditStart(now)
	case "batch":
		return l.batch(now)
	case "tick":
		idle, err := l.bool("idle")
		return Tick{Time: now, Idle: idle}, err
	case "loss":
		return l.loss(now)
	case "stop":
		return Stop{Time: now}, nil
	case "unsent":
		return l.count(now)
	}
	panic("unreachable: op in allowed but not decoded: " + op)
}

func contains(s []string, k string) bool {
	for _, x := range s {
		if x == k {
			return true
		}
	}
	return false
}

func (l line) str(k string, required bool) (string, error) {
	raw, ok := l[k]
	if !ok {
		if required {
			return "", fmt.Errorf("missing %q", k)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%q must be a string", k)
	}
	return s, nil
}

func (l line) uint(k string, bits int) (uint64, bool, error) {
	raw, ok := l[k]
	if !ok {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(string(raw), 10, bits)
	if err != nil {
		return 0, true, fmt.Errorf("%q must be an unsigned %d-bit integer, not %s", k, bits, raw)
	}
	return v, true, nil
}

func (l line) pid(k string, required bool) (int32, error) {
	v, ok, err := l.uint(k, 32)
	switch {
	case err != nil:
		return 0, err
	case !ok && required:
		return 0, fmt.Errorf("missing %q", k)
	case ok && (v == 0 || v > math.MaxInt32):
		return 0, fmt.Errorf("%q must be a pid between 1 and %d", k, math.MaxInt32)
	}
	return int32(v), nil
}

func (l line) int(k string) (int64, error) {
	raw, ok := l[k]
	if !ok {
		return 0, nil
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q must be a signed 64-bit integer, not %s", k, raw)
	}
	return v, nil
}

func (l line) bool(k string) (bool, error) {
	raw, ok := l[k]
	if !ok {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, fmt.Errorf("%q must be true or false", k)
	}
	return b, nil
}

// text returns a string or a number field as written.
func (l line) text(k string) (string, error) {
	raw, ok := l[k]
	if !ok {
		return "", fmt.Errorf("missing %q", k)
	}
	if len(raw) > 0 && raw[0] == '"' {
		return l.str(k, true)
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err != nil && !isDigits(string(raw)) {
		return "", fmt.Errorf("%q must be a string or a number", k)
	}
	return string(raw), nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func (l line) kernelContid() (bool, contid.ID, error) {
	raw, ok := l["contid"]
	if !ok {
		return false, 0, nil
	}
	if string(raw) == "-1" || string(raw) == "null" {
		return true, contid.Unset, nil
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return false, 0, fmt.Errorf("\"contid\" must be a 64-bit unsigned number or -1, not %s", raw)
	}
	return true, contid.ID(v), nil
}

func (l line) ns() (ns.Set, error) {
	var set ns.Set
	raw, ok := l["ns"]
	if !ok {
		return set, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return set, fmt.Errorf("\"ns\" must map namespace types to \"dev:inode\" strings")
	}
	for k, v := range m {
		typ, err := ns.ParseType(k)
		if err != nil {
			return set, err
		}
		if set[typ], err = ns.ParseID(v); err != nil {
			return set, err
		}
	}
	return set, nil
}

// subject reads uid auid ses comm exe; ok is false when none is present.
func (l line) subject() (engine.Subject, bool, error) {
	s := engine.Subject{AUID: engine.UnsetID, Ses: engine.UnsetID}
	any := false
	for _, f := range []struct {
		k string
		p *uint32
	}{{"uid", &s.UID}, {"auid", &s.AUID}, {"ses", &s.Ses}} {
		v, ok, err := l.uint(f.k, 32)
		if err != nil {
			return s, false, err
		}
		if ok {
			*f.p, any = uint32(v), true
		}
	}
	for _, f := range []struct {
		k string
		p *string
	}{{"comm", &s.Comm}, {"exe", &s.Exe}} {
		v, err := l.str(f.k, false)
		if err != nil {
			return s, false, err
		}
		if _, ok := l[f.k]; ok {
			*f.p, any = v, true
		}
	}
	return s, any, nil
}

func (l line) start(k string, now int64) (uint64, error) {
	v, ok, err := l.uint(k, 64)
	if !ok && err == nil {
		return uint64(now), nil
	}
	return v, err
}

// tgid is the line's "tgid", or pid when it has none (a process's main
// thread).
func (l line) tgid(pid int32) (int32, error) {
	if _, ok := l["tgid"]; !ok {
		return pid, nil
	}
	return l.pid("tgid", true)
}

func (l line) task(now int64) (engine.Input, error) {
	var ev engine.SeedTask
	var err error
	ev.Time = now
	if ev.PID, err = l.pid("pid", true); err != nil {
		return nil, err
	}
	if ev.TGID, err = l.tgid(ev.PID); err != nil {
		return nil, err
	}
	if ev.PPID, err = l.pid("ppid", false); err != nil {
		return nil, err
	}
	if ev.Start, err = l.start("start", now); err != nil {
		return nil, err
	}
	v, _, err := l.uint("parent_start", 64)
	if err != nil {
		return nil, err
	}
	ev.ParentStart = v
	if ev.Born, err = l.int("born"); err != nil {
		return nil, err
	}
	if ev.NS, err = l.ns(); err != nil {
		return nil, err
	}
	if ev.Subject, _, err = l.subject(); err != nil {
		return nil, err
	}
	if ev.HasContid, ev.Contid, err = l.kernelContid(); err != nil {
		return nil, err
	}
	ev.Capcontid, err = l.bool("capcontid")
	return ev, err
}

func (l line) container(now int64) (engine.Input, error) {
	ev := engine.SeedContainer{Time: now, Parent: contid.Unset}
	v, ok, err := l.uint("id", 64)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("missing \"id\"")
	}
	ev.ID = contid.ID(v)
	if ev.Owner.PID, err = l.pid("owner", false); err != nil {
		return nil, err
	}
	if ev.Owner.Start, _, err = l.uint("owner_start", 64); err != nil {
		return nil, err
	}
	if v, ok, err = l.uint("parent", 64); err != nil {
		return nil, err
	} else if ok {
		ev.Parent = contid.ID(v)
	}
	ev.Name, err = l.str("name", false)
	return ev, err
}

func (l line) fork(now int64) (engine.Input, error) {
	ev := engine.Fork{Time: now}
	var err error
	if ev.Parent, err = l.pid("parent", true); err != nil {
		return nil, err
	}
	if ev.Child, err = l.pid("child", true); err != nil {
		return nil, err
	}
	if ev.ChildTGID, err = l.tgid(ev.Child); err != nil {
		return nil, err
	}
	if ev.Start, err = l.start("start", now); err != nil {
		return nil, err
	}
	if ev.NS, err = l.ns(); err != nil {
		return nil, err
	}
	if ev.HasContid, ev.Contid, err = l.kernelContid(); err != nil {
		return nil, err
	}
	if v, ok, err := l.uint("clone_flags", 64); err != nil {
		return nil, err
	} else if ok {
		ev.HasCloneFlags, ev.CloneFlags = true, v
	}
	if ev.CloneParent, err = l.bool("clone_parent"); err != nil {
		return nil, err
	}
	s, ok, err := l.subject()
	if ok {
		ev.Subject = &s
	}
	return ev, err
}

func (l line) exec(now int64) (engine.Input, error) {
	ev := engine.Exec{Time: now}
	var err error
	if ev.PID, err = l.pid("pid", true); err != nil {
		return nil, err
	}
	if ev.OldTID, err = l.pid("old_tid", false); err != nil {
		return nil, err
	}
	if ev.Comm, err = l.str("comm", false); err != nil {
		return nil, err
	}
	if ev.Exe, err = l.str("exe", false); err != nil {
		return nil, err
	}
	if ev.NS, err = l.ns(); err != nil {
		return nil, err
	}
	s, ok, err := l.subject()
	if ok {
		ev.UID, ev.AUID, ev.Ses = s.UID, s.AUID, s.Ses
		_, u := l["uid"]
		_, a := l["auid"]
		_, se := l["ses"]
		ev.HasCreds = u || a || se
	}
	return ev, err
}

func (l line) nschange(now int64, op string) (engine.Input, error) {
	ev := engine.NSChange{Time: now, Op: engine.Setns}
	switch op {
	case "unshare":
		ev.Op = engine.Unshare
	case "observe":
		ev.Op = engine.Observed
	}
	var err error
	if ev.PID, err = l.pid("pid", true); err != nil {
		return nil, err
	}
	if _, ok := l["ns"]; !ok {
		return nil, fmt.Errorf("missing \"ns\"")
	}
	ev.NS, err = l.ns()
	return ev, err
}

// request reads the fields set and capcontid share.
func (l line) request() (caller engine.TaskRef, forParent, capable bool, target int32, subj *engine.Subject, err error) {
	if caller.PID, err = l.pid("caller", true); err != nil {
		return
	}
	if caller.Start, _, err = l.uint("caller_start", 64); err != nil {
		return
	}
	if forParent, err = l.bool("for_parent"); err != nil {
		return
	}
	if capable, err = l.bool("cap"); err != nil {
		return
	}
	if target, err = l.pid("target", true); err != nil {
		return
	}
	s, ok, err := l.subject()
	if ok {
		subj = &s
	}
	return
}

func (l line) set(now int64) (engine.Input, error) {
	ev := engine.SetContid{Time: now}
	var err error
	if ev.Caller, ev.ForParent, ev.CallerCap, ev.Target, ev.Subject, err = l.request(); err != nil {
		return nil, err
	}
	if ev.Value, err = l.text("contid"); err != nil {
		return nil, err
	}
	ev.Name, err = l.str("name", false)
	return ev, err
}

func (l line) capcontid(now int64) (engine.Input, error) {
	ev := engine.SetCapcontid{Time: now}
	var err error
	if ev.Caller, ev.ForParent, ev.CallerCap, ev.Target, ev.Subject, err = l.request(); err != nil {
		return nil, err
	}
	ev.Value, err = l.text("value")
	return ev, err
}

// join: a process moved into a cgroup bound to a container.
func (l line) join(now int64) (engine.Input, error) {
	ev := engine.Join{Time: now, Tagged: true}
	var err error
	if ev.PID, err = l.pid("pid", true); err != nil {
		return nil, err
	}
	if ev.Mover, err = l.pid("mover", true); err != nil {
		return nil, err
	}
	v, ok, err := l.uint("contid", 64)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("join needs contid")
	}
	if ev.Contid = contid.ID(v); ev.Contid == contid.Unset {
		return nil, fmt.Errorf("join: contid %d is the unset value", v)
	}
	if _, ok := l["tagged"]; ok {
		if ev.Tagged, err = l.bool("tagged"); err != nil {
			return nil, err
		}
	}
	return ev, nil
}
