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
// The process is read through package procfs. This file is pure (the
// decision); peer_linux.go asks the kernel.
package peer

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/source/procfs"
)

// ErrExec: the process that connected has exec'd since the daemon accepted
// the connection (or exited and its pid was reused): what it was is not
// what it is, so the connection no longer identifies anyone. The client
// must open a new connection. It wraps EPERM.
var ErrExec = fmt.Errorf("peer: the connecting process exec'd since it connected: reconnect: %w", unix.EPERM)

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
func Privileged(conn Creds, st procfs.Status, secure bool, c uint) bool {
	if !st.Has(c) || st.UID[1] != conn.UID || st.GID[1] != conn.GID {
		return false
	}
	return !secure || conn.UID == 0
}
