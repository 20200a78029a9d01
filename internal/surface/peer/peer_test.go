package peer

import (
	"testing"

	"github.com/contid/contid/internal/source/procfs"
)

// TestPrivileged: a capability counts only while the caller's effective
// ids are those it connected with, and not for an image that gained
// privileges at exec unless it connected as root.
func TestPrivileged(t *testing.T) {
	all := uint64(1)<<procfs.CapAuditControl | 1<<procfs.CapSysPtrace
	st := func(uid, euid uint32, caps uint64) procfs.Status {
		return procfs.Status{UID: [4]uint32{uid, euid, euid, euid}, GID: [4]uint32{uid, euid, euid, euid}, CapEff: caps}
	}
	for _, tt := range []struct {
		name   string
		conn   Creds
		now    procfs.Status
		secure bool
		want   bool
	}{
		{"root", Creds{0, 0}, st(0, 0, all), false, true},
		{"root without the capability", Creds{0, 0}, st(0, 0, 0), false, false},
		{"ambient capabilities, not root", Creds{1000, 1000}, st(1000, 1000, all), false, true},
		{"connected as a user, then setuid-root exec (su)", Creds{65534, 65534}, st(65534, 0, all), true, false},
		{"setuid-root program that connected itself", Creds{0, 0}, st(65534, 0, all), true, true},
		{"connected as a user, then a file-capability exec", Creds{65534, 65534}, st(65534, 65534, all), true, false},
		{"connected as root, then setuid to a user keeping capabilities", Creds{0, 0}, st(65534, 65534, all), false, false},
		{"setgid exec after connect", Creds{1000, 1000}, procfs.Status{UID: [4]uint32{1000, 1000, 1000, 1000}, GID: [4]uint32{1000, 42, 42, 42}, CapEff: all}, false, false},
	} {
		if got := Privileged(tt.conn, tt.now, tt.secure, procfs.CapAuditControl); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
