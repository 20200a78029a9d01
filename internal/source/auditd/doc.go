// Package auditd tells what contid can prove about the audit daemon whose
// plugin feed it reads (audit mode plugin): whether every record of the
// feed is this host's.
//
// auditd hands its plugins the records of this kernel and, when it listens
// for remote logging (tcp_listen_port) and distributes network events
// (distribute_network), the records other hosts send it. A remote
// record's node= is written by the sender and not checked by auditd (its
// listener passes the line on as it came), so a node name proves nothing:
// two hosts may share a name, and a sender may write any. What the kernel
// can prove is that auditd holds no TCP socket: then it can receive
// nothing from another host, and every record it hands on is its own
// kernel's, whatever node name it writes on them.
//
// Checking takes one readlink per open descriptor of auditd; the TCP
// tables are read only when auditd holds a socket not seen before.
// A Prober is not safe for concurrent use.
package auditd
