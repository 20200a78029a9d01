// Package search finds audit events in contid's logs (and in auditd's) by
// container, time, type, process, key and outcome, as ausearch does, and
// keeps a sidecar index per log file so that a search reads the parts of
// the logs that can hold matches instead of all of them.
//
// The pieces, pure apart from files.go, index I/O and Run:
//
//   - Grouper turns lines into events by their msg=audit(SEC.MSEC:SERIAL)
//     stamp. Its rules are local and deterministic, so that a scan started
//     at an index checkpoint with the grouper state saved there gives the
//     very events a scan from the start of the file gives:
//     an event ends at EOE; an event holding a record that always ends an
//     event (a user-space or daemon record, USER, PROCTITLE, contid's own
//     records…) ends at the first line of another event; an event ends when
//     a line more than 2 s younger arrives (ausearch's window) or when its
//     first line lies 1 MiB behind; every event ends at the end of input.
//     Events come out in the order of their first line.
//
//   - Query holds ausearch-style criteria: every criterion given must hold
//     (AND), and a criterion given more than once holds when any of its
//     values does (OR).
//
//   - Index is a file's sidecar: per block of about 16 KiB of log, the
//     time and serial range and a Bloom filter of the containers, keys and
//     record types of the events that start in it, the grouper state at
//     the block's start, and the lines after the block that belong to
//     those events. A search reads only the blocks the filter
//     admits, and skips a file whose time range (in the sidecar's header)
//     is outside the query; a missing, torn or stale sidecar (checked by
//     the checksums of the parts it reads, the log's device, inode and
//     size, and hashes of the covered bytes) is ignored and the file
//     scanned, so the index can make a search faster but never change its
//     answer.
//
//   - LogIndex keeps a log's sidecar current while the daemon writes it,
//     told by the log's writer of every line that reached the file and
//     given the records of the lines the daemon formatted, so that it
//     parses only the others; IndexWriter does the same from bytes.
//     Follower follows a growing log (--follow); Report sums events per
//     container (contid report).
//
// Lines that do not parse are skipped and counted, as is a last line
// without its newline (a writer's crash or a write in progress).
//
// docs/search.md describes the commands, the grouping rules, the index
// and the measurements behind its design.
package search
