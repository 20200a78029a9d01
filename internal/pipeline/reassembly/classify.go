package reassembly

import "github.com/contid/contid/internal/records"

// Class says how a record type ends its event (see the package
// documentation for the table and the kernel code behind it).
type Class uint8

const (
	// MaybeAlone records may be the only record of their event or may open
	// a syscall event whose SYSCALL … EOE follow: the kernel logs them with
	// the current task's audit context, which exists only inside an audited
	// syscall (AVC, CONFIG_CHANGE, LOGIN, …). An event made
	// only of such records ends at its timeout and is complete. Types this
	// package does not know are MaybeAlone.
	MaybeAlone Class = iota
	// Standalone records are always logged outside any syscall context and
	// take a serial of their own: user-space messages, auditd's messages,
	// KERNEL, NETFILTER_PKT, SECCOMP, ANOM_ABEND. Their event ends when a
	// record of another stamp arrives (records of the same stamp that follow
	// at once, such as a CONTAINER_ID in contid's own logs, join it), at
	// EndRead, at Advance or at Flush.
	Standalone
	// InSyscall records exist only in an event the kernel writes at syscall
	// (or io_uring operation) exit, which always ends with EOE: an event
	// holding one ends at its EOE, and one that times out without it is
	// Incomplete.
	InSyscall
)

// String returns the class's name.
func (c Class) String() string {
	switch c {
	case Standalone:
		return "standalone"
	case InSyscall:
		return "in-syscall"
	}
	return "maybe-alone"
}

// Classify returns the class of a record type.
func Classify(t records.Type) Class {
	switch {
	case t == 1005, // USER
		t >= 1100 && t <= 1199, // AUDIT_FIRST_USER_MSG … AUDIT_LAST_USER_MSG
		t >= 1200 && t <= 1299, // auditd's own DAEMON_* (never from the kernel)
		t == 1324,              // NETFILTER_PKT: xt_AUDIT and nft_log log it with no context
		t == 1326,              // SECCOMP: seccomp runs before syscall audit entry
		t == 1701,              // ANOM_ABEND: core dumps happen after syscall exit
		t == 2000,              // KERNEL: audit_init, no context
		t >= 2100 && t <= 2999: // AUDIT_FIRST_USER_MSG2 … AUDIT_LAST_USER_MSG2
		return Standalone
	}
	switch t {
	case 1300, // SYSCALL
		1302,                   // PATH
		1303,                   // IPC
		1304,                   // SOCKETCALL
		1306,                   // SOCKADDR
		1307,                   // CWD
		1309,                   // EXECVE
		1311,                   // IPC_SET_PERM
		1312, 1313, 1314, 1315, // MQ_OPEN, MQ_SENDRECV, MQ_NOTIFY, MQ_GETSETATTR
		1317, // FD_PAIR
		1318, // OBJ_PID
		1320, // EOE
		1321, // BPRM_FCAPS
		1322, // CAPSET
		1323, // MMAP
		1327, // PROCTITLE
		1330, // KERN_MODULE
		1332, // TIME_INJOFFSET
		1333, // TIME_ADJNTPVAL
		1336, // URINGOP
		1337: // OPENAT2
		return InSyscall
	}
	return MaybeAlone
}

// daemonType reports auditd's own records (DAEMON_START …): auditd writes
// them itself, numbered from its own counter, so their serials are not the
// kernel's.
func daemonType(t records.Type) bool { return t >= 1200 && t <= 1299 }
