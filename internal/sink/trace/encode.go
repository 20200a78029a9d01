package trace

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/records"
)

// KernelResult is one answer of the kernel (engine.Kernel) while the
// engine applied an input: Errno 0 and no Msg for success.
type KernelResult struct {
	Errno int    `json:"errno"`
	Msg   string `json:"msg,omitempty"`
}

// ResultOf is the KernelResult of err.
func ResultOf(err error) KernelResult {
	if err == nil {
		return KernelResult{}
	}
	var n unix.Errno
	if !errors.As(err, &n) {
		n = unix.EIO
	}
	return KernelResult{Errno: int(n), Msg: err.Error()}
}

// Err is the error r stands for: nil for success, else one whose text is
// the recorded one and that unwraps to the errno.
func (r KernelResult) Err() error {
	if r.Errno == 0 && r.Msg == "" {
		return nil
	}
	return kernelError(r)
}

type kernelError KernelResult

func (e kernelError) Error() string { return e.Msg }
func (e kernelError) Unwrap() error { return unix.Errno(e.Errno) }

// Encoder writes inputs as trace lines that decode to the same inputs.
// It is not safe for concurrent use.
type Encoder struct {
	w   *bufio.Writer
	b   []byte
	err error
}

// NewEncoder writes to w; call Flush at the end.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: bufio.NewWriter(w)} }

// Comment writes a line the decoder skips.
func (e *Encoder) Comment(text string) {
	e.write(append([]byte("# "), text...))
}

// Encode writes in, with the kernel's answers while it was applied.
func (e *Encoder) Encode(in engine.Input, kernel []KernelResult) { e.EncodeSent(in, kernel, nil) }

// EncodeSent is Encode with, for each own record the engine wrote while
// applying in, whether it went into the kernel's stream (written only when
// one did).
func (e *Encoder) EncodeSent(in engine.Input, kernel []KernelResult, sent []bool) {
	b := e.b[:0]
	switch v := in.(type) {
	case engine.SeedTask:
		b = head(b, "task", v.Time)
		b = num(b, "pid", int64(v.PID))
		b = num(b, "tgid", int64(v.TGID))
		if v.PPID != 0 {
			b = num(b, "ppid", int64(v.PPID))
		}
		b = unum(b, "start", v.Start)
		if v.ParentStart != 0 {
			b = unum(b, "parent_start", v.ParentStart)
		}
		if v.Born != 0 {
			b = num(b, "born", v.Born)
		}
		b = nsSet(b, v.NS)
		b = subject(b, v.Subject)
		b = kernelContid(b, v.HasContid, v.Contid)
		if v.Capcontid {
			b = flag(b, "capcontid", true)
		}
	case engine.SeedContainer:
		b = head(b, "container", v.Time)
		b = unum(b, "id", uint64(v.ID))
		if v.Owner.PID != 0 {
			b = num(b, "owner", int64(v.Owner.PID))
		}
		if v.Owner.Start != 0 {
			b = unum(b, "owner_start", v.Owner.Start)
		}
		b = unum(b, "parent", uint64(v.Parent))
		b = str(b, "name", v.Name)
	case engine.Fork:
		b = head(b, "fork", v.Time)
		b = num(b, "parent", int64(v.Parent))
		b = num(b, "child", int64(v.Child))
		b = num(b, "tgid", int64(v.ChildTGID))
		b = unum(b, "start", v.Start)
		b = nsSet(b, v.NS)
		b = kernelContid(b, v.HasContid, v.Contid)
		if v.Subject != nil {
			b = subject(b, *v.Subject)
		}
		if v.HasCloneFlags {
			b = unum(b, "clone_flags", v.CloneFlags)
		}
		if v.CloneParent {
			b = flag(b, "clone_parent", true)
		}
	case engine.Exec:
		b = head(b, "exec", v.Time)
		b = num(b, "pid", int64(v.PID))
		if v.OldTID != 0 {
			b = num(b, "old_tid", int64(v.OldTID))
		}
		b = str(b, "comm", v.Comm)
		b = str(b, "exe", v.Exe)
		if v.HasCreds {
			b = unum(b, "uid", uint64(v.UID))
			b = unum(b, "auid", uint64(v.AUID))
			b = unum(b, "ses", uint64(v.Ses))
		}
		b = nsSet(b, v.NS)
	case engine.Exit:
		b = head(b, "exit", v.Time)
		b = num(b, "pid", int64(v.PID))
		b = nsSet(b, v.NS)
	case engine.NSChange:
		op := "setns"
		switch v.Op {
		case engine.Unshare:
			op = "unshare"
		case engine.Observed:
			op = "observe"
		}
		b = head(b, op, v.Time)
		b = num(b, "pid", int64(v.PID))
		b = append(b, `,"ns":{`...)
		b = nsFields(b, v.NS)
		b = append(b, '}')
	case engine.SetContid:
		b = head(b, "set", v.Time)
		b = request(b, v.Caller, v.ForParent, v.CallerCap, v.Target, v.Subject)
		b = str(b, "contid", v.Value)
		if v.Name != "" {
			b = str(b, "name", v.Name)
		}
	case engine.SetCapcontid:
		b = head(b, "capcontid", v.Time)
		b = request(b, v.Caller, v.ForParent, v.CallerCap, v.Target, v.Subject)
		b = str(b, "value", v.Value)
	case engine.Join:
		b = head(b, "join", v.Time)
		b = num(b, "pid", int64(v.PID))
		b = unum(b, "contid", uint64(v.Contid))
		b = num(b, "mover", int64(v.Mover))
		b = flag(b, "tagged", v.Tagged)
	default:
		e.Comment(fmt.Sprintf("input %T not encoded", in))
		return
	}
	if len(kernel) > 0 {
		k, _ := json.Marshal(kernel)
		b = append(append(b, `,"kernel":`...), k...)
	}
	if slices.Contains(sent, true) {
		k, _ := json.Marshal(sent)
		b = append(append(b, `,"sent":`...), k...)
	}
	b = append(b, '}')
	e.b = b
	e.write(b)
}

// EncodeAudit writes one of the audit path's items (AuditStart, Batch,
// Tick, Loss, Stop, Unsent).
func (e *Encoder) EncodeAudit(it any) {
	b, ok := encodeAudit(e.b[:0], it)
	if !ok {
		e.Comment(fmt.Sprintf("item %T not encoded", it))
		return
	}
	b = append(b, '}')
	e.b = b
	e.write(b)
}

func (e *Encoder) write(b []byte) {
	if e.err != nil {
		return
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = err
		return
	}
	e.err = e.w.WriteByte('\n')
}

// Flush writes what is buffered; it returns the first error of any write.
func (e *Encoder) Flush() error {
	if e.err != nil {
		return fmt.Errorf("trace: write: %w", e.err)
	}
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("trace: write: %w", err)
	}
	return nil
}

func head(b []byte, op string, t int64) []byte {
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `","time":"`...)
	b = time.Unix(0, t).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func key(b []byte, k string) []byte {
	b = append(b, `,"`...)
	b = append(b, k...)
	return append(b, `":`...)
}

func num(b []byte, k string, v int64) []byte   { return strconv.AppendInt(key(b, k), v, 10) }
func unum(b []byte, k string, v uint64) []byte { return strconv.AppendUint(key(b, k), v, 10) }
func flag(b []byte, k string, v bool) []byte   { return strconv.AppendBool(key(b, k), v) }

func str(b []byte, k, v string) []byte {
	q, _ := json.Marshal(v) // a string always marshals
	return append(key(b, k), q...)
}

func subject(b []byte, s engine.Subject) []byte {
	b = unum(b, "uid", uint64(s.UID))
	b = unum(b, "auid", uint64(s.AUID))
	b = unum(b, "ses", uint64(s.Ses))
	b = str(b, "comm", s.Comm)
	return str(b, "exe", s.Exe)
}

func kernelContid(b []byte, has bool, id contid.ID) []byte {
	switch {
	case !has:
		return b
	case id == contid.Unset:
		return num(b, "contid", -1)
	}
	return unum(b, "contid", uint64(id))
}

func request(b []byte, caller engine.TaskRef, forParent, capable bool, target int32, subj *engine.Subject) []byte {
	b = num(b, "caller", int64(caller.PID))
	if caller.Start != 0 {
		b = unum(b, "caller_start", caller.Start)
	}
	if forParent {
		b = flag(b, "for_parent", true)
	}
	if capable {
		b = flag(b, "cap", true)
	}
	b = num(b, "target", int64(target))
	if subj != nil {
		b = subject(b, *subj)
	}
	return b
}

// nsSet writes the "ns" field when the set has a namespace.
func nsSet(b []byte, s ns.Set) []byte {
	if s == (ns.Set{}) {
		return b
	}
	b = append(b, `,"ns":{`...)
	b = nsFields(b, s)
	return append(b, '}')
}

func nsFields(b []byte, s ns.Set) []byte {
	first := true
	for t, id := range s {
		if id.IsZero() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, ns.Type(t).String()...)
		b = append(b, `":"`...)
		b = append(b, id.String()...)
		if id.Unique != 0 {
			b = append(b, '/')
			b = strconv.AppendUint(b, id.Unique, 10)
		}
		b = append(b, '"')
	}
	return b
}

// Recorder writes a live run's trace to a file: the engine's inputs with
// the kernel's answers (the core's Recorder). Not safe for concurrent
// use: the core records from its one goroutine.
type Recorder struct {
	f   *os.File
	enc *Encoder
	ks  []KernelResult
}

// Create makes (or empties) the file at path, mode 0600, for a trace. A
// trace names every process of the host, so the file must be the
// caller's alone: a symbolic link, a file another user owns (one planted
// in /tmp to read the trace) or one with other names (hard links) is
// refused (ELOOP, EPERM).
func Create(path string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	var st unix.Stat_t
	err = unix.Fstat(int(f.Fd()), &st)
	switch {
	case err != nil:
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%s is not a regular file: %w", path, unix.EPERM)
	case int(st.Uid) != os.Geteuid() || st.Nlink != 1:
		err = fmt.Errorf("%s is another user's or has other names: %w", path, unix.EPERM)
	default:
		if err = f.Chmod(0o600); err == nil {
			err = f.Truncate(0)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	r := &Recorder{f: f, enc: NewEncoder(f)}
	r.enc.Comment("recorded by contid daemon --record; replay with: contid replay FILE")
	return r, nil
}

// Record writes in, the kernel's answers while it was applied and where
// each own record it made went (sent: into the kernel's stream).
func (r *Recorder) Record(in engine.Input, kernel []error, sent []bool) {
	r.ks = r.ks[:0]
	for _, err := range kernel {
		r.ks = append(r.ks, ResultOf(err))
	}
	r.enc.EncodeSent(in, r.ks, sent)
}

// Audit writes how the audit path was opened.
func (r *Recorder) Audit(mode string, self int32, timeout time.Duration, filter string) {
	r.enc.EncodeAudit(AuditStart{Time: time.Now().UnixNano(), Mode: mode, Self: self, TimeoutMS: timeout.Milliseconds(), Filter: filter})
}

// Batch writes a batch of records as the pipeline is given it.
func (r *Recorder) Batch(b []records.Raw) {
	r.enc.EncodeAudit(Batch{Time: time.Now().UnixNano(), Records: b})
}

// Tick writes a tick of the audit path.
func (r *Recorder) Tick(now time.Time, idle bool) {
	r.enc.EncodeAudit(Tick{Time: now.UnixNano(), Idle: idle})
}

// Loss writes a loss record the core wrote (at: its stamp).
func (r *Recorder) Loss(at int64, kind string, n uint64, extra []records.Field, sent bool) {
	r.enc.EncodeAudit(Loss{Time: at, Kind: kind, Count: n, Extra: extra, Sent: sent})
}

// Stop writes the audit path's stop.
func (r *Recorder) Stop() { r.enc.EncodeAudit(Stop{Time: time.Now().UnixNano()}) }

// Unsent writes how many queued own records were written locally at stop.
func (r *Recorder) Unsent(n int) {
	r.enc.EncodeAudit(Unsent{Time: time.Now().UnixNano(), Count: n})
}

// Close writes what is buffered and closes the file.
func (r *Recorder) Close() error {
	return errors.Join(r.enc.Flush(), r.f.Close())
}
