// Package ns names Linux namespaces the way contid records them: the nsfs
// entry's device and inode ("dev:inode", as `stat -L -c %d:%i
// /proc/PID/ns/TYPE` prints them) plus the kernel's unique 64-bit namespace
// id (ioctl NS_GET_ID, Linux 6.18+), which unlike the inode is never reused.
//
// The package is pure and safe for concurrent use.
package ns

import (
	"fmt"
	"strconv"
	"strings"
)

// Type is a namespace type, in the order NS_INFO writes them.
type Type uint8

const (
	Cgroup Type = iota
	IPC
	Mnt
	Net
	PID
	Time
	User
	UTS
	NumTypes
)

var typeNames = [NumTypes]string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}

// String returns the name used in /proc/PID/ns and in nstype= fields.
func (t Type) String() string {
	if t < NumTypes {
		return typeNames[t]
	}
	return "ns" + strconv.Itoa(int(t))
}

// ParseType maps a name from /proc/PID/ns to its Type.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("ns: unknown namespace type %q", s)
}

// ID identifies one namespace. The zero ID means "unknown".
type ID struct {
	Dev uint32 // st_dev of the nsfs entry, user-space encoding
	Ino uint32 // nsfs inode number (the kernel's ns.inum)
	// Unique is the kernel's 64-bit namespace id, 0 where the kernel has none.
	Unique uint64
}

// IsZero reports whether the ID is unknown.
func (id ID) IsZero() bool { return id == ID{} }

// String writes "dev:inode"; the unique id is a separate field in records.
func (id ID) String() string {
	return strconv.FormatUint(uint64(id.Dev), 10) + ":" + strconv.FormatUint(uint64(id.Ino), 10)
}

// ParseID reads "dev:inode" or "dev:inode/unique".
func ParseID(s string) (ID, error) {
	var id ID
	main, uniq, hasUniq := strings.Cut(s, "/")
	d, i, ok := strings.Cut(main, ":")
	if !ok {
		return ID{}, fmt.Errorf("ns: %q is not dev:inode", s)
	}
	dv, err := strconv.ParseUint(d, 10, 32)
	if err != nil {
		return ID{}, fmt.Errorf("ns: bad device in %q", s)
	}
	iv, err := strconv.ParseUint(i, 10, 32)
	if err != nil || iv == 0 {
		return ID{}, fmt.Errorf("ns: bad inode in %q", s)
	}
	id.Dev, id.Ino = uint32(dv), uint32(iv)
	if hasUniq {
		u, err := strconv.ParseUint(uniq, 10, 64)
		if err != nil {
			return ID{}, fmt.Errorf("ns: bad unique id in %q", s)
		}
		id.Unique = u
	}
	return id, nil
}

// Set is a task's namespaces, indexed by Type.
type Set [NumTypes]ID
