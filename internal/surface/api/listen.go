package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/safedir"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/surface/peer"
)

// bind creates the socket at path with mode without ever following a
// link: it binds in a fresh root-only directory beside path, sets the mode
// there, and renames the socket into place. The directory of path must be
// root's and writable by nobody else (safedir).
func bind(path string, mode os.FileMode) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := safedir.Ensure(dir, 0o755); err != nil {
		return nil, fmt.Errorf("api: socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("api: %s: another daemon is listening", path)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("api: %s exists and is not a socket", path)
	}
	tmp, err := os.MkdirTemp(dir, ".contid-bind-")
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	defer os.RemoveAll(tmp)
	at := filepath.Join(tmp, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: at, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the name moves; Shutdown removes it
	// Nobody else can enter tmp (0700, root's), so at is our socket.
	if err := os.Chmod(at, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	// rename replaces a stale socket at path and never follows a link.
	if err := os.Rename(at, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	return ln, nil
}

// admission bounds connections: at most max in all; unprivileged callers
// (not CAP_AUDIT_CONTROL in the initial user namespace, by peer.Capable)
// at most perUID per uid and max-reserved together, so the reserved slots
// always remain for root's registrations and the OCI hook. A caller over
// its limit is answered EAGAIN at once and closed: accept never waits.
type admission struct {
	max, reserved, perUID int

	mu            sync.Mutex
	total, unpriv int
	byUID         map[uint32]int
}

func (a *admission) take(uid uint32, privileged bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= a.max:
		return fmt.Errorf("all %d connections are taken", a.max)
	case privileged:
	case a.byUID[uid] >= a.perUID:
		return fmt.Errorf("uid %d holds %d connections, its limit", uid, a.perUID)
	case a.unpriv >= a.max-a.reserved:
		return fmt.Errorf("the %d connections for unprivileged callers are taken", a.max-a.reserved)
	default:
		a.unpriv++
		a.byUID[uid]++
	}
	a.total++
	return nil
}

// full reports whether uid holds its unprivileged limit.
func (a *admission) full(uid uint32) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byUID[uid] >= a.perUID
}

func (a *admission) release(uid uint32, privileged bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if !privileged {
		a.unpriv--
		if a.byUID[uid]--; a.byUID[uid] == 0 {
			delete(a.byUID, uid)
		}
	}
}

// listener identifies each caller at accept (package peer) and admits it
// or refuses it.
type listener struct {
	*net.UnixListener
	adm       admission
	log       *slog.Logger
	peerPidFD bool // false: ignore SO_PEERPIDFD, as before Linux 6.5 (tests)
	lingering chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		// A non-root uid at its limit is refused before any /proc read,
		// so a flood of connections from one user costs little. (A
		// non-root caller with ambient CAP_AUDIT_CONTROL is then held to
		// its uid's limit too.)
		if uid, ok := peerUID(c); ok && uid != 0 && l.adm.full(uid) {
			l.refuse(c, unix.EAGAIN, fmt.Sprintf("too many connections: uid %d holds %d connections, its limit; try again later", uid, l.adm.perUID))
			continue
		}
		p, err := peerOf(c, l.peerPidFD)
		if err != nil {
			l.refuse(c, unix.ESRCH, "who is calling: "+err.Error())
			continue
		}
		// Reserved slots go to callers privileged now, by the rules that
		// judge their requests.
		priv := false
		if now, err := p.Check(); err == nil {
			priv = p.Capable(now, procfs.CapAuditControl)
		}
		if err := l.adm.take(p.Conn.UID, priv); err != nil {
			l.log.Debug("api: connection refused", "pid", p.PID, "uid", p.Conn.UID, "err", err)
			p.Close()
			l.refuse(c, unix.EAGAIN, "too many connections: "+err.Error()+"; try again later")
			continue
		}
		return &conn{UnixConn: c, peer: p, priv: priv, l: l}, nil
	}
}

func peerUID(c *net.UnixConn) (uint32, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred == nil {
		return 0, false
	}
	return cred.Uid, true
}

func peerOf(c *net.UnixConn, peerPidFD bool) (peer.Peer, error) {
	if peerPidFD {
		return peer.FromConn(c)
	}
	return peer.FromConnWithoutPeerPidFD(c)
}

// refuse answers a connection that will not be served with an HTTP error
// and closes it. It reads and discards what the client sends meanwhile
// (for at most a second, up to 16 KiB): a client still writing its
// request to a closed socket would fail with EPIPE before it reads why.
// At most 64 refused connections linger so; more are closed at once.
func (l *listener) refuse(c *net.UnixConn, n unix.Errno, msg string) {
	body, _ := json.Marshal(Error{Errno: engine.ErrnoName(n), Code: int(n), Message: msg})
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		httpStatus(n), statusText(n), len(body), body)
	select {
	case l.lingering <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.lingering }()
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.CopyN(io.Discard, c, 16<<10)
		c.Close()
	}()
}

func statusText(n unix.Errno) string {
	if n == unix.EAGAIN {
		return "Service Unavailable"
	}
	return "Error"
}

// conn is an admitted connection: who connected, and its slot.
type conn struct {
	*net.UnixConn
	peer peer.Peer
	priv bool
	l    *listener
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.adm.release(c.peer.Conn.UID, c.priv)
		c.peer.Close()
	})
	return c.UnixConn.Close()
}

func (c *conn) String() string { return "pid " + strconv.Itoa(int(c.peer.PID)) }
