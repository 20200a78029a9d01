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

	"github.com/contid/contid/internal/procfs"
)

// Peer is the process that connected to a unix socket.
type Peer struct {
	PID  int32 // as the kernel recorded it at connect
	Conn Creds // effective uid and gid at connect (SO_PEERCRED)
	// PidFD refers to exactly that process: SO_PEERPIDFD (Linux 6.5+), or
	// before that a pidfd opened at accept (Linux 5.3+), whose process is
	// the connecting one if Identity's start time and credentials fit;
	// -1 on kernels without pidfds, where Alive compares start times.
	PidFD int
	// Identity is the process's exec image when the connection was
	// accepted; a request from another image is refused (ErrExec).
	Identity Identity
	dir      string // /proc/PID
}

// FromConn asks the kernel who is at the other end of c and records its
// exec identity. The caller must Close the Peer.
func FromConn(c *net.UnixConn) (Peer, error) { return fromConn(c, true) }

// FromConnWithoutPeerPidFD is FromConn as on a kernel before 6.5, without
// SO_PEERPIDFD: the pidfd is opened at accept and checked by start time
// (tests of that path).
func FromConnWithoutPeerPidFD(c *net.UnixConn) (Peer, error) { return fromConn(c, false) }

func fromConn(c *net.UnixConn, peerPidFD bool) (Peer, error) {
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
		p.PID, p.Conn = cred.Pid, Creds{UID: cred.Uid, GID: cred.Gid}
		if !peerPidFD {
			return
		}
		pfd, perr := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		switch {
		case perr == nil:
			p.PidFD = pfd
		case errors.Is(perr, unix.ENOPROTOOPT):
			// Before 6.5: a pidfd opened below, checked by start time.
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
		return Peer{}, fmt.Errorf("peer: the peer is in another pid namespace (pid %d)", p.PID)
	}
	p.dir = "/proc/" + strconv.Itoa(int(p.PID))
	if p.PidFD < 0 {
		// The pid may have been reused between connect and now; then the
		// pidfd and identity are the new process's, which Privileged judges
		// against the connect-time credentials like any exec.
		if pfd, err := unix.PidfdOpen(int(p.PID), 0); err == nil {
			p.PidFD = pfd
		} else if !errors.Is(err, unix.ENOSYS) {
			return Peer{}, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
		}
	}
	if p.Identity, err = p.identity(); err != nil {
		p.Close()
		return Peer{}, err
	}
	if err := p.Alive(); err != nil {
		p.Close()
		return Peer{}, err
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
// it and nothing read about PID since accept was about another process.
// Without a pidfd it compares the start time with the one at accept.
func (p *Peer) Alive() error {
	if p.PidFD >= 0 {
		if unix.PidfdSendSignal(p.PidFD, 0, nil, 0) != nil {
			return fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
		}
		return nil
	}
	if start, err := readStart(p.dir); err != nil || start != p.Identity.Start {
		return fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	return nil
}

func readStart(dir string) (uint64, error) {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, fmt.Errorf("peer: %w", err)
	}
	st, err := procfs.ParseStat(b)
	if err != nil {
		return 0, err
	}
	return st.StartTime, nil
}

// identity reads the process's exec identity (the caller checks Alive).
func (p *Peer) identity() (Identity, error) {
	var id Identity
	var err error
	if id.Start, err = readStart(p.dir); err != nil {
		return id, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	auxv, err := os.ReadFile(p.dir + "/auxv")
	if err != nil {
		return id, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	id.Auxv = string(auxv)
	var st syscall.Stat_t
	if err := syscall.Stat(p.dir+"/exe", &st); err != nil {
		// A kernel thread or a zombie has no exe: nobody to talk to.
		return id, fmt.Errorf("peer: process %d: exe: %w", p.PID, unix.ESRCH)
	}
	id.ExeDev, id.ExeIno = st.Dev, st.Ino
	return id, nil
}

// Now is what a request is judged by: the caller as it is now, checked to
// be the image that connected.
type Now struct {
	Status Status
	Secure bool // AT_SECURE of the image
	// InitialUserNS: the caller is in the daemon's user namespace, the
	// initial one (the daemon checks at start).
	InitialUserNS bool
	PidNS         [2]uint64 // dev, inode of /proc/PID/ns/pid
}

// Capable reports whether capability bit c of the caller counts: held in
// the initial user namespace, and by the credentials it connected with
// (Privileged).
func (p *Peer) Capable(n Now, c uint) bool {
	return n.InitialUserNS && Privileged(p.Conn, n.Status, n.Secure, c)
}

// Check reads the caller as it is now. It fails with ErrExec when its
// exec image is not the one accepted, and with ESRCH when it exited.
func (p *Peer) Check() (Now, error) {
	var n Now
	id, err := p.identity()
	if err != nil {
		return n, err
	}
	if id != p.Identity {
		return n, ErrExec
	}
	if n.Secure, err = ParseAuxv([]byte(id.Auxv)); err != nil {
		return n, err
	}
	b, err := os.ReadFile(p.dir + "/status")
	if err != nil {
		return n, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	if n.Status, err = ParseStatus(b); err != nil {
		return n, err
	}
	var self, other syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/user", &self); err != nil {
		return n, fmt.Errorf("peer: %w", err)
	}
	if err := syscall.Stat(p.dir+"/ns/user", &other); err != nil {
		return n, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	n.InitialUserNS = self.Dev == other.Dev && self.Ino == other.Ino
	if err := syscall.Stat(p.dir+"/ns/pid", &other); err != nil {
		return n, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	n.PidNS = [2]uint64{other.Dev, other.Ino}
	// Everything read was about the process accepted (still alive, so its
	// pid is not reused) and its image (checked before any other read, and
	// an exec meanwhile would fail the next request).
	return n, p.Alive()
}

// OpenPidNS opens the caller's pid namespace for translating pids.
func (p *Peer) OpenPidNS() (*PidNS, error) {
	fd, err := unix.Open(p.dir+"/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("peer: process %d: pid namespace: %w", p.PID, unix.ESRCH)
	}
	if err := p.Alive(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &PidNS{fd: fd}, nil
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

// NSpid reads the pids host task pid has in each of its pid namespaces.
func NSpid(pid int32) ([]int32, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	return ParseNSpid(b)
}
