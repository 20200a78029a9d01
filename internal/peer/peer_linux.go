package peer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Peer is the process that connected to a unix socket.
type Peer struct {
	PID      int32 // as the kernel recorded it at connect
	UID, GID uint32
	// PidFD refers to exactly that process (SO_PEERPIDFD, Linux 6.5+); -1
	// where the kernel lacks it. While the pidfd is alive, PID names it.
	PidFD int
}

// FromConn asks the kernel who is at the other end of c. The caller must
// Close the Peer.
func FromConn(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer: %w", err)
	}
	p := Peer{PidFD: -1}
	var cerr error
	err = raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr != nil {
			return
		}
		p.PID, p.UID, p.GID = cred.Pid, cred.Uid, cred.Gid
		pfd, perr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		switch {
		case perr == nil:
			p.PidFD = pfd
		case errors.Is(perr, unix.ENOPROTOOPT):
			// Older kernel: fall back to pid + start time checks.
		default:
			cerr = fmt.Errorf("SO_PEERPIDFD: %w", perr)
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Peer{}, fmt.Errorf("peer: credentials: %w", err)
	}
	if p.PID <= 0 {
		p.Close()
		return Peer{}, fmt.Errorf("peer: the peer is in another pid namespace (pid %d)", p.PID)
	}
	return p, nil
}

// Close releases the pidfd.
func (p *Peer) Close() {
	if p.PidFD >= 0 {
		unix.Close(p.PidFD)
		p.PidFD = -1
	}
}

// Alive reports whether the peer process still runs: then PID still names
// it and nothing read about PID since connect was about another process.
// Without a pidfd it reports only that some process has the pid.
func (p *Peer) Alive() error {
	var err error
	if p.PidFD >= 0 {
		err = unix.PidfdSendSignal(p.PidFD, 0, nil, 0)
	} else {
		err = unix.Kill(int(p.PID), 0)
	}
	if err != nil {
		return fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	return nil
}

// ReadStatus reads /proc/PID/status of the peer and checks afterwards that
// the peer is still alive, so the status is the peer's own.
func (p *Peer) ReadStatus() (Status, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(p.PID)) + "/status")
	if err != nil {
		return Status{}, fmt.Errorf("peer: %w", err)
	}
	s, err := ParseStatus(b)
	if err != nil {
		return Status{}, err
	}
	return s, p.Alive()
}

// InInitialUserNS reports whether the peer is in the daemon's user
// namespace; the daemon checks at start that it runs in the initial one.
func (p *Peer) InInitialUserNS() (bool, error) {
	var self, other syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/user", &self); err != nil {
		return false, fmt.Errorf("peer: %w", err)
	}
	if err := syscall.Stat("/proc/"+strconv.Itoa(int(p.PID))+"/ns/user", &other); err != nil {
		return false, fmt.Errorf("peer: %w", err)
	}
	return self.Ino == other.Ino && self.Dev == other.Dev, p.Alive()
}

// CanControlAudit reports whether the peer holds CAP_AUDIT_CONTROL in the
// initial user namespace (SPEC §3 rule 3).
func (p *Peer) CanControlAudit() (bool, error) {
	s, err := p.ReadStatus()
	if err != nil {
		return false, err
	}
	if !s.Has(CapAuditControl) {
		return false, nil
	}
	return p.InInitialUserNS()
}

// InitialUserNS reports whether this process runs in the initial user
// namespace, where the daemon must run for its capability checks to mean
// what SPEC §3 says.
func InitialUserNS() (bool, error) {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false, fmt.Errorf("peer: %w", err)
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295", nil
}

// PidNS identifies the peer's pid namespace (dev, inode of /proc/PID/ns/pid).
func (p *Peer) PidNS() (dev, ino uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(int(p.PID))+"/ns/pid", &st); err != nil {
		return 0, 0, fmt.Errorf("peer: %w", err)
	}
	return st.Dev, st.Ino, p.Alive()
}

// NSpid reads the pids host task pid has in each of its pid namespaces.
func NSpid(pid int32) ([]int32, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	return ParseNSpid(b)
}
