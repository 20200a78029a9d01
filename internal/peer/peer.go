// Package peer identifies the process at the other end of a unix socket as
// the kernel reports it (SO_PEERCRED, SO_PEERPIDFD), never from what the
// process says, and reads what registration needs to know about it: whether
// it holds CAP_AUDIT_CONTROL in the initial user namespace.
//
// status.go is pure (parsing /proc/PID/status); peer_linux.go does the I/O.
package peer

import (
	"bytes"
	"fmt"
	"strconv"
)

// CapAuditControl is the capability bit of CAP_AUDIT_CONTROL.
const CapAuditControl = 30

// Status is what registration needs from /proc/PID/status.
type Status struct {
	TGID   int32
	PPID   int32
	CapEff uint64
}

// ParseStatus reads the Tgid, PPid and CapEff lines of /proc/PID/status.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var seen int
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Tgid", "PPid":
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil || n < 0 {
				return Status{}, fmt.Errorf("peer: status %s %q is not a pid", k, v)
			}
			if k[0] == 'T' {
				s.TGID = int32(n)
			} else {
				s.PPID = int32(n)
			}
			seen++
		case "CapEff":
			n, err := strconv.ParseUint(string(v), 16, 64)
			if err != nil {
				return Status{}, fmt.Errorf("peer: status CapEff %q is not hex", v)
			}
			s.CapEff = n
			seen++
		}
	}
	if seen != 3 {
		return Status{}, fmt.Errorf("peer: status lacks Tgid, PPid or CapEff")
	}
	return s, nil
}

// Has reports whether the effective set holds capability bit c.
func (s Status) Has(c uint) bool { return c < 64 && s.CapEff&(1<<c) != 0 }

// ParseNSpid reads the NSpid line of /proc/PID/status: the task's pid in
// each pid namespace it is in, outermost first.
func ParseNSpid(b []byte) ([]int32, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok || string(k) != "NSpid" {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 || len(f) > 33 {
			break
		}
		out := make([]int32, len(f))
		for i, x := range f {
			n, err := strconv.ParseInt(string(x), 10, 32)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("peer: status NSpid %q", v)
			}
			out[i] = int32(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("peer: status lacks NSpid")
}
