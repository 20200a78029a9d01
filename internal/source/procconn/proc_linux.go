package procconn

import (
	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/source/taskevent"
)

// procReader fills in from /proc what the connector's events lack. It is
// best effort: a task may be gone (and its pid even reused) by the time the
// reader gets to its event.
type procReader struct {
	fs  procfs.FS
	buf []byte
}

func newProcReader(fs procfs.FS) *procReader {
	return &procReader{fs: fs, buf: make([]byte, 4096)}
}

// fill sets StartBoottime of fork and exec events from /proc/TID/stat and,
// for exec, Comm from the same file, UID from status and AUID and Ses from
// loginuid and sessionid. A fork's Comm stays empty: by now the child may
// have exec'd. fill leaves the event unchanged when the stat cannot be read
// or names a task that started after the event (a reused pid); the
// credentials stay unknownID when their files cannot be read.
func (p *procReader) fill(ev *taskevent.Event) {
	if ev.Kind != taskevent.KindFork && ev.Kind != taskevent.KindExec {
		return
	}
	b, ok := p.read(ev.TID, "stat")
	if !ok {
		return
	}
	st, err := procfs.ParseStat(b)
	if err != nil || st.PID != ev.TID {
		return
	}
	start, ok := plausibleStart(st.StartTime, ev.Time, bootMinusMono())
	if !ok {
		return
	}
	ev.StartBoottime = start
	if ev.Kind != taskevent.KindExec {
		return
	}
	ev.Comm = st.Comm
	if b, ok := p.read(ev.TID, "status"); ok {
		if c, err := procfs.ParseStatus(b); err == nil && c.TGID == ev.TGID {
			ev.UID = c.UID[0]
		}
	}
	if b, ok := p.read(ev.TID, "loginuid"); ok {
		if id, err := procfs.ParseID(b); err == nil {
			ev.AUID = id
		}
	}
	if b, ok := p.read(ev.TID, "sessionid"); ok {
		if id, err := procfs.ParseID(b); err == nil {
			ev.Ses = id
		}
	}
}

// read returns /proc/TID/name (a thread's tid works too, though /proc does
// not list it), valid until the next call.
func (p *procReader) read(tid int32, name string) ([]byte, bool) {
	b, err := p.fs.ReadInto(p.buf, tid, name)
	return b, err == nil && len(b) > 0
}

// bootMinusMono is CLOCK_BOOTTIME minus CLOCK_MONOTONIC: the time the
// machine spent suspended since boot.
func bootMinusMono() uint64 {
	var b, m unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &m) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &b) != nil {
		return 0
	}
	if d := b.Nano() - m.Nano(); d > 0 {
		return uint64(d)
	}
	return 0
}
