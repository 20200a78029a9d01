// Package peer identifies the process at the other end of a unix socket as
// the kernel reports it (SO_PEERCRED, SO_PEERPIDFD), never from what the
// process says, and decides what registration needs to know about it:
// whether it holds CAP_AUDIT_CONTROL (or CAP_SYS_PTRACE) in the initial
// user namespace, and which pid namespace it is in.
//
// Capabilities are read from /proc, which shows the process as it is now,
// not as it was when it connected. A caller that connects and then execs a
// setuid-root program (su waiting at its password prompt) while a helper
// keeps the socket would otherwise be judged by su's capabilities. So a
// capability counts only when the kernel's connect-time account still
// fits (see Privileged), and a caller whose exec image changed since the
// daemon accepted its connection is refused (ErrExec).
//
// This file is pure (parsing /proc files, the decision); peer_linux.go
// does the I/O.
package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Capability bits.
const (
	CapSysPtrace    = 19
	CapAuditControl = 30
)

// ErrExec: the process that connected has exec'd since the daemon accepted
// the connection (or exited and its pid was reused): what it was is not
// what it is, so the connection no longer identifies anyone. The client
// must open a new connection. It wraps EPERM.
var ErrExec = fmt.Errorf("peer: the connecting process exec'd since it connected: reconnect: %w", unix.EPERM)

// Status is what registration needs from /proc/PID/status.
type Status struct {
	TGID   int32
	PPID   int32
	CapEff uint64
	UID    [4]uint32 // real, effective, saved, filesystem
	GID    [4]uint32
}

// ParseStatus reads the Tgid, PPid, Uid, Gid and CapEff lines of
// /proc/PID/status.
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
		case "Uid", "Gid":
			f := bytes.Fields(v)
			if len(f) != 4 {
				return Status{}, fmt.Errorf("peer: status %s %q: want 4 ids", k, v)
			}
			dst := &s.UID
			if k[0] == 'G' {
				dst = &s.GID
			}
			for i, x := range f {
				n, err := strconv.ParseUint(string(x), 10, 32)
				if err != nil {
					return Status{}, fmt.Errorf("peer: status %s %q is not an id", k, x)
				}
				dst[i] = uint32(n)
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
	if seen != 5 {
		return Status{}, fmt.Errorf("peer: status lacks Tgid, PPid, Uid, Gid or CapEff")
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

// atSecure is the auxv key AT_SECURE: 1 when the image's exec changed its
// credentials (setuid, setgid, file capabilities, an LSM transition).
const atSecure = 23

// ParseAuxv reads AT_SECURE from /proc/PID/auxv (native-endian 64-bit
// key/value pairs ending with AT_NULL).
func ParseAuxv(b []byte) (secure bool, err error) {
	if len(b)%16 != 0 {
		return false, fmt.Errorf("peer: auxv of %d bytes is not a list of pairs", len(b))
	}
	for ; len(b) >= 16; b = b[16:] {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		switch k {
		case 0:
			return secure, nil
		case atSecure:
			secure = v != 0
		}
	}
	return false, errors.New("peer: auxv has no AT_NULL")
}

// Identity tells one exec image of a process from another: the start time
// (a reused pid is another process), the executable's device and inode,
// and the whole auxiliary vector the kernel built at exec, which holds the
// addresses of the new stack, entry point and vDSO (randomised at every
// exec), AT_SECURE and the uids and gids the image started with.
type Identity struct {
	Start          uint64
	ExeDev, ExeIno uint64
	Auxv           string
}

// Creds is the kernel's account of the caller at connect time: SO_PEERCRED
// holds its effective uid and gid as they were when it called connect().
type Creds struct{ UID, GID uint32 }

// Privileged decides whether capability bit c of a caller counts, from its
// status now, its image's AT_SECURE and its credentials at connect (the
// initial user namespace is checked apart). The capability must be in the
// effective set and the caller's effective ids must still be those it
// connected with: a setuid exec after connect changes them. An image that
// gained privileges at its exec (AT_SECURE) counts only if it connected as
// root: an unprivileged process that connects and then execs a program
// with file capabilities keeps its ids, and nothing the kernel recorded at
// connect tells that exec from one made before connect.
func Privileged(conn Creds, st Status, secure bool, c uint) bool {
	if !st.Has(c) || st.UID[1] != conn.UID || st.GID[1] != conn.GID {
		return false
	}
	return !secure || conn.UID == 0
}
