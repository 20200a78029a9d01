package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// TicksPerSecond is USER_HZ, the unit of starttime; Linux fixes it at 100
// for user space on every architecture contid runs on.
const TicksPerSecond = 100

// TicksFromBoottime converts task->start_boottime (ns) to starttime ticks
// the way the kernel's nsec_to_clock_t does for /proc.
func TicksFromBoottime(ns uint64) uint64 { return ns / (1e9 / TicksPerSecond) }

// Stat is the part of /proc/PID/stat contid uses.
type Stat struct {
	PID       int32
	Comm      string
	State     byte
	PPID      int32
	StartTime uint64 // ticks since boot
}

// Exited reports whether the task has exited: a zombie (Z) or dead (X)
// task's sockets and files are closed.
func (s Stat) Exited() bool { return s.State == 'Z' || s.State == 'X' }

// ParseStat parses /proc/PID/stat. The comm field may contain spaces and
// parentheses, so it is everything between the first '(' and the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 1 || close < open {
		return s, fmt.Errorf("procfs: stat has no (comm)")
	}
	pid, err := strconv.ParseInt(string(bytes.TrimSpace(b[:open])), 10, 32)
	if err != nil || pid <= 0 {
		return s, fmt.Errorf("procfs: stat pid %q", b[:open])
	}
	s.PID = int32(pid)
	s.Comm = string(b[open+1 : close])
	f := bytes.Fields(b[close+1:])
	// After comm: state(3) ppid(4) … starttime(22), so starttime is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return s, fmt.Errorf("procfs: stat has %d fields after comm, want at least 20", len(f))
	}
	s.State = f[0][0]
	ppid, err := strconv.ParseInt(string(f[1]), 10, 32)
	if err != nil || ppid < 0 {
		return s, fmt.Errorf("procfs: stat ppid %q", f[1])
	}
	s.PPID = int32(ppid)
	if s.StartTime, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return s, fmt.Errorf("procfs: stat starttime %q", f[19])
	}
	return s, nil
}

// Capability bits of Status.CapEff.
const (
	CapSysPtrace    = 19
	CapAuditControl = 30
)

// Status is the part of /proc/PID/status contid uses.
type Status struct {
	TGID   int32
	PPID   int32
	UID    [4]uint32 // real, effective, saved, filesystem
	GID    [4]uint32
	CapEff uint64
	// NSpid is the task's pid in each pid namespace it is in, outermost
	// first; nil when the kernel does not write the line (before 4.1).
	NSpid []int32
}

// Has reports whether the effective set holds capability bit c.
func (s Status) Has(c uint) bool { return c < 64 && s.CapEff&(1<<c) != 0 }

// maxPidNSLevel bounds NSpid: the kernel nests at most 32 pid namespaces
// below the initial one.
const maxPidNSLevel = 33

// ParseStatus reads the Tgid, PPid, Uid, Gid, CapEff and NSpid lines of
// /proc/PID/status. All but NSpid must be there; a line that is there must
// be well formed.
func ParseStatus(b []byte) (Status, error) {
	const (
		tgid = 1 << iota
		ppid
		uid
		gid
		capEff
		all = tgid | ppid | uid | gid | capEff
	)
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
		case "Tgid":
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil || n <= 0 {
				return Status{}, fmt.Errorf("procfs: status Tgid %q is not a pid", v)
			}
			s.TGID = int32(n)
			seen |= tgid
		case "PPid":
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil || n < 0 {
				return Status{}, fmt.Errorf("procfs: status PPid %q is not a pid", v)
			}
			s.PPID = int32(n)
			seen |= ppid
		case "Uid", "Gid":
			f := bytes.Fields(v)
			if len(f) != 4 {
				return Status{}, fmt.Errorf("procfs: status %s %q: want 4 ids", k, v)
			}
			dst := &s.UID
			if k[0] == 'G' {
				dst = &s.GID
				seen |= gid
			} else {
				seen |= uid
			}
			for i, x := range f {
				n, err := strconv.ParseUint(string(x), 10, 32)
				if err != nil {
					return Status{}, fmt.Errorf("procfs: status %s %q is not an id", k, x)
				}
				dst[i] = uint32(n)
			}
		case "CapEff":
			n, err := strconv.ParseUint(string(v), 16, 64)
			if err != nil {
				return Status{}, fmt.Errorf("procfs: status CapEff %q is not hex", v)
			}
			s.CapEff = n
			seen |= capEff
		case "NSpid":
			f := bytes.Fields(v)
			if len(f) == 0 || len(f) > maxPidNSLevel {
				return Status{}, fmt.Errorf("procfs: status NSpid %q", v)
			}
			s.NSpid = make([]int32, len(f))
			for i, x := range f {
				n, err := strconv.ParseInt(string(x), 10, 32)
				if err != nil || n <= 0 {
					return Status{}, fmt.Errorf("procfs: status NSpid %q", v)
				}
				s.NSpid[i] = int32(n)
			}
		}
	}
	if seen != all {
		return Status{}, fmt.Errorf("procfs: status lacks Tgid, PPid, Uid, Gid or CapEff")
	}
	return s, nil
}

// ParseID reads a decimal id file such as loginuid or sessionid.
func ParseID(b []byte) (uint32, error) {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("procfs: id %q", b)
	}
	return uint32(n), nil
}

// atSecure is the auxv key AT_SECURE: 1 when the image's exec changed its
// credentials (setuid, setgid, file capabilities, an LSM transition).
const atSecure = 23

// ParseAuxv reads AT_SECURE from /proc/PID/auxv (native-endian 64-bit
// key/value pairs ending with AT_NULL).
func ParseAuxv(b []byte) (secure bool, err error) {
	if len(b)%16 != 0 {
		return false, fmt.Errorf("procfs: auxv of %d bytes is not a list of pairs", len(b))
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
	return false, errors.New("procfs: auxv has no AT_NULL")
}

// ParseFdinfoPid reads the Pid line of a pidfd's /proc/self/fdinfo/FD:
// the pid of its task in the reader's pid namespace, -1 once it has exited
// (and 0 where it has no pid in that namespace).
func ParseFdinfoPid(b []byte) (int, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		v, ok := bytes.CutPrefix(line, []byte("Pid:"))
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 32)
		if err != nil || n < -1 {
			return 0, fmt.Errorf("procfs: fdinfo Pid %q", v)
		}
		return int(n), nil
	}
	return 0, errors.New("procfs: fdinfo has no Pid line (not a pidfd)")
}

// IsIdentityUIDMap reports whether /proc/PID/uid_map maps every uid to
// itself, as it does in the initial user namespace only.
func IsIdentityUIDMap(b []byte) bool {
	f := bytes.Fields(b)
	return len(f) == 3 && string(f[0]) == "0" && string(f[1]) == "0" && string(f[2]) == "4294967295"
}
