// Package auditrules holds the kernel audit rules contid loads in primary
// mode (audit.rules / --audit-rules) and keeps the kernel state contid
// changes safe across a crash.
//
// Parse reads a rules file in auditctl syntax and accepts only rule
// options: -a/-A (list,action), -w (watch), -p, -k, -F, -C, -S. Every
// option that changes or reads global audit state (-e, -D, -b, -f, -r,
// -R, -d, -W, --backlog_wait_time, --reset-lost, --loginuid-immutable, …)
// is refused wherever it stands on the line, and so is a rule that could
// drop contid's own records (types 2900–2907): an exclude rule, or a never
// rule of the user list, whose msgtype conditions one of those types
// meets (no msgtype condition at all included). A file with one bad line
// is refused whole, with file:line. Parse is pure apart from what auditctl
// also looks up: user and group names, and whether a watched path is a
// directory. The rules are encoded by github.com/elastic/go-libaudit's
// auditctl-compatible parser and rule builder; the bytes the kernel gets
// are decoded again (auditnl.ParseRule) and checked there.
//
// Journal keeps, in a state file beside the API socket, what contid must
// put back: the audit settings it found before its first change (enabled,
// backlog_limit, backlog_wait_time), the rules it added (their kernel
// encoding, recorded before they are added) and the kernel's lost
// counter as last reported. The file is replaced atomically (write, then
// rename), so a process killed at any point leaves either the old or the
// new state; it lives under /run, which goes with the kernel state at
// reboot (a boot id in the file guards other places). A daemon that
// starts after a crash adopts it: it puts back at stop what the crashed
// one found, treats the recorded rules as its own (a recorded rule that is
// still wanted stays loaded, one no longer wanted is deleted) and reports
// the kernel's loss since the last recorded count. A rule equal to one
// contid wants that was in the kernel before contid added it is someone
// else's: contid neither records nor deletes it. A flock on a lock file
// beside the state keeps two daemons from using it at once.
//
// Limits: a rule equal to one of contid's recorded rules that an
// administrator loads while contid is down after a crash is taken for
// contid's and deleted at its stop. Rules keep their order within a run;
// after an adoption, a recorded rule that stayed loaded keeps its place
// and new ones follow it.
package auditrules
