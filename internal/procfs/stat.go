// Package procfs reads what contid needs to know about processes that
// already run when it starts: /proc/PID/stat, status and ns links. The
// parsers (this file) are pure and fuzzed; scan_linux.go does the I/O.
//
// Start times are clock ticks since boot (USER_HZ, 100 on Linux), the unit
// of /proc/PID/stat's starttime; the daemon converts the tracker's
// start_boottime to the same unit so identities compare.
package procfs

import (
	"bytes"
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

// Creds is the part of /proc/PID/status and loginuid/sessionid contid uses.
type Creds struct {
	TGID int32
	UID  uint32 // real uid
}

// ParseStatus reads Tgid and the real Uid of /proc/PID/status.
func ParseStatus(b []byte) (Creds, error) {
	var c Creds
	seen := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch string(k) {
		case "Tgid":
			n, err := strconv.ParseInt(string(f[0]), 10, 32)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("procfs: status Tgid %q", f[0])
			}
			c.TGID = int32(n)
			seen++
		case "Uid":
			n, err := strconv.ParseUint(string(f[0]), 10, 32)
			if err != nil {
				return c, fmt.Errorf("procfs: status Uid %q", f[0])
			}
			c.UID = uint32(n)
			seen++
		}
	}
	if seen != 2 {
		return c, fmt.Errorf("procfs: status lacks Tgid or Uid")
	}
	return c, nil
}

// ParseID reads a decimal id file such as loginuid or sessionid.
func ParseID(b []byte) (uint32, error) {
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("procfs: id %q", b)
	}
	return uint32(n), nil
}
