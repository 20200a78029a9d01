package peer

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/procfs"
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
	Identity procfs.Identity
	proc     procfs.FS // where the process is read: procfs.Host
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
	if st, err := p.proc.Stat(p.PID); err != nil || st.StartTime != p.Identity.Start {
		return fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	return nil
}

// identity reads the process's exec identity (the caller checks Alive).
// A kernel thread or a zombie has no exe: nobody to talk to.
func (p *Peer) identity() (procfs.Identity, error) {
	id, err := p.proc.Identity(p.PID)
	if err != nil {
		return id, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	return id, nil
}

// Now is what a request is judged by: the caller as it is now, checked to
// be the image that connected.
type Now struct {
	Status procfs.Status
	Secure bool // AT_SECURE of the image
	// InitialUserNS: the caller is in the daemon's user namespace, the
	// initial one (the daemon checks at start).
	InitialUserNS bool
	PidNS         ns.ID
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
	if n.Secure, err = procfs.ParseAuxv([]byte(id.Auxv)); err != nil {
		return n, fmt.Errorf("peer: %w", err)
	}
	if n.Status, err = p.proc.Status(p.PID); err != nil {
		return n, fmt.Errorf("peer: %w", err)
	}
	self, err := p.proc.SelfNSID(ns.User)
	if err != nil {
		return n, fmt.Errorf("peer: %w", err)
	}
	other, err := p.proc.NSID(p.PID, ns.User)
	if err != nil {
		return n, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	n.InitialUserNS = self == other
	if n.PidNS, err = p.proc.NSID(p.PID, ns.PID); err != nil {
		return n, fmt.Errorf("peer: process %d: %w", p.PID, unix.ESRCH)
	}
	// Everything read was about the process accepted (still alive, so its
	// pid is not reused) and its image (checked before any other read, and
	// an exec meanwhile would fail the next request).
	return n, p.Alive()
}

// OpenPidNS opens the caller's pid namespace for translating pids.
func (p *Peer) OpenPidNS() (*procfs.PidNS, error) {
	n, err := p.proc.OpenPidNS(p.PID)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	if err := p.Alive(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}
