// Package rules holds contid's filtering and routing rules (spec §6): which
// events are dropped, and where kept events are written.
//
// # Syntax
//
// A rules file has one rule per line, in the manner of auditctl:
//
//	-a ACTION[,ROUTE]… [-F FIELD OP VALUE]…
//
// Blank lines are ignored, and a word starting with # starts a comment that
// runs to the end of the line. Words are separated by spaces or tabs.
//
// ACTION is
//
//	drop   the event is written nowhere
//	keep   the event is written to its routes
//
// ROUTEs (keep only; any order, each at most once) are
//
//	host          the host's audit log
//	container     the log of the container of the event's innermost contid
//	stream=NAME   a named destination defined elsewhere (a socket an
//	              in-container audit daemon reads, a fleet stream); NAME is
//	              1–64 letters, digits, '_', '-' or '.'
//
// keep without routes means keep,host,container.
//
// A condition is FIELD OP VALUE written as one word (-F uid>=1000); -F and
// the condition may also be written together (-Fuid>=1000). A value may be
// written in double quotes, with \" and \\ for a quote and a backslash, to
// hold spaces (-F exe="/opt/my app/bin/run"); a '#' inside a word is an
// ordinary byte. Control bytes are refused. The fields:
//
//	field    ops         value          holds when
//	contid   = !=        N | none       =N: some element of some chain attached to the
//	                                    event is N, so a parent ID selects its nested
//	                                    children; !=N: no element is N (also true for
//	                                    an event without chains); =none: the event has
//	                                    no contid at all; !=none: it has one
//	type     = !=        NAME | N       =: some record of the event has the type (a
//	                                    name as records.ParseType reads it: SYSCALL,
//	                                    CONTAINER_OP, UNKNOWN[2901], or a number);
//	                                    !=: none has it
//	key      = !=        KEY            =: one of the event's audit keys (key=, several
//	                                    keys separated by 0x01 as auditctl -k a -k b
//	                                    makes) is KEY; !=: none is (also true for an
//	                                    event without a key)
//	pid      = != < > <= >=  N          the subject's pid, uid, auid (uid and auid
//	uid      = != < > <= >=  N|unset    also take unset or -1 for 4294967295)
//	auid     = != < > <= >=  N|unset
//	syscall  = !=        NAME | N       the subject's syscall number; a name is an
//	                                    x86_64 name and matches only x86_64 events
//	                                    (arch=c000003e)
//	exe      = !=        PATH           the subject's exe, compared exactly
//
// The subject is the event's SYSCALL record, else its first record with a
// pid= (see View.Fill); for a user record that is the sending process. A
// condition on pid, uid, auid, syscall or exe is false — whatever the
// operator, != included — when the event has no such field, so a drop rule
// never drops an event for lacking a field. contid, type and key compare
// against sets and their != means "no element equals".
//
// # Evaluation
//
// Rules are tried in file order; the first whose conditions all hold
// decides (a rule without conditions always holds). When none does, the
// event is kept with the default routes: host and container.
//
// # Example
//
//	# Never write the health checks of container 42.
//	-a drop -F contid=42 -F exe=/usr/bin/curl
//	# Container 7 and its nested containers: also to its in-container auditd.
//	-a keep,host,container,stream=ct7 -F contid=7
//	# Events outside any container go to the host log only.
//	-a keep,host -F contid=none
//
// # Errors and limits
//
// Parse reports every problem (up to 20) as file:line:column and a reason,
// and returns no Set when there is any: a bad rules file changes nothing.
// Lines are at most 4096 bytes, files at most 10000 rules, key and exe
// values at most 1024 bytes.
//
// # Contract
//
// The package is pure: no I/O beyond the io.Reader given to Parse, no
// clock, no package-level mutable state. A Set is immutable and safe for
// concurrent use. Decide does not allocate; its cost grows with the rules
// tried and, per contid condition, with the chains' length.
package rules
