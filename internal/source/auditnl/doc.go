// Package auditnl is contid's client of kernel audit over netlink
// (NETLINK_AUDIT): it receives the kernel's audit records, reads and sets
// the audit status, and sends user-space records (CONTAINER_OP and the
// other contid types, spec §5.1) into the kernel's audit stream. It is the
// "primary" and "listener" sources of spec §5.3.
//
// The package has two layers. Decode, ParseAck, ParseStatus and
// ParseStamp are pure: they parse received datagrams, never panic, are
// fuzzed (FuzzDecode) and are tested on datagrams captured from a real
// kernel (testdata/captured, recaptured as root with
// `go test -run TestCaptureSeeds -update`). Client does the I/O (Linux).
//
// # Contract
//
//   - Records. Receive returns every audit record the kernel delivers to
//     the Client's socket, in the order received, one per Message, with
//     the payload exactly as sent (`audit(SEC.MSEC:SERIAL): …`, without a
//     trailing NUL: the kernel sends none). The kernel writes a
//     unicast record's nlmsg_len as the payload length alone; Decode
//     reads both that and the corrected multicast form, and both give the
//     same payload. Messages that are not records (acks, the kernel's
//     AUDIT_REPLACE probe when another process asks to become the daemon)
//     are counted in Stats.Control and skipped; datagrams that did not
//     come from the kernel are dropped and counted (Stats.Foreign);
//     undecodable bytes are dropped, logged and counted
//     (Stats.DecodeErrors). Receive never returns a decode error: the
//     stream goes on.
//
//   - Primary mode: the Client registers its socket as the audit daemon
//     (AUDIT_SET pid). There is one per host: Open refuses (a
//     *RegisteredError naming the pid and its comm, wrapping
//     ErrDaemonRegistered and EEXIST) if a live process holds the
//     registration, including another Client of the same process. With
//     Config.Takeover it sends that process SIGTERM (as its service
//     manager would), waits up to 5 s for the registration to go, and
//     registers; never from its own process. A registration left by a
//     dead process is replaced without Takeover (the kernel clears it).
//     Close unregisters only if the registration is still this process's,
//     and puts back each setting Open changed (enabled, backlog_limit,
//     backlog_wait_time) only if it still has the value Open set. With
//     Config.Adopt the caller names the settings to put back (what a
//     killed predecessor found before it changed them); Open calls it
//     after a takeover has finished (the old daemon has exited) and
//     before it changes anything.
//
//   - Rules. AddRule, DeleteRule and ListRules send AUDIT_ADD_RULE,
//     AUDIT_DEL_RULE and AUDIT_LIST_RULES on the request socket; the
//     kernel's answer is its errno (EEXIST: it holds an equal rule;
//     ENOENT: no such rule). Rule is struct audit_rule_data; ParseRule
//     decodes it (fuzzed, FuzzParseRule; tested on the kernel's answers
//     captured in testdata/captured/rules).
//
//   - Listener mode: the Client joins the multicast group
//     AUDIT_NLGRP_READLOG beside whatever daemon there is. It changes no
//     audit setting (Open refuses Takeover, Enable and backlog settings).
//
//   - Loss is counted where it can be (see Loss below); this package
//     drops nothing without counting it.
//
//   - Concurrency. Receive and TryReceive are for one goroutine; they
//     share state under a mutex, so a TryReceive waits for a Receive that
//     is blocked. Status, SendUser and Stats are safe to call from any
//     goroutine at any time, concurrently with Receive: requests go over a
//     separate request socket (serialised by its own mutex) and never
//     touch the record stream. Never call SendUser from the goroutine
//     that calls Receive: while the backlog is full the kernel makes the
//     sender wait for the reader. Close may be called from any goroutine; it
//     interrupts a blocked Receive, which then returns an error wrapping
//     os.ErrClosed. Receive waits on the Go runtime's poller (through a
//     private one-shot epoll, armed only while it waits, so datagrams that
//     arrive while nobody reads wake no thread), so a done context
//     interrupts it at once. The package starts no goroutine of
//     its own and has no package-level mutable state.
//
//   - Privileges: CAP_AUDIT_CONTROL (Primary; Status; rules), CAP_AUDIT_READ
//     (Listener), CAP_AUDIT_WRITE (SendUser), CAP_NET_ADMIN for a receive
//     buffer above net.core.rmem_max (SO_RCVBUFFORCE; without it the
//     buffer is capped and a warning logged). Kernel audit serves the
//     initial user and pid namespaces only.
//
// # Loss
//
// What this package drops it counts. What the kernel drops it counts only
// in part, so a consumer must also watch serial numbers: records of one
// event share a serial, and events of different CPUs may arrive out of
// serial order, so gap detection needs a window. That is the consumer's
// job, not this package's.
//
// Primary: while the backlog (backlog_limit) is full, the kernel makes
// producers wait (up to backlog_wait_time) instead of losing their
// records, so a reader that keeps up loses none of theirs. Records the
// kernel creates where it cannot sleep (GFP_ATOMIC: AUDIT_BPF, LSM
// denials, netfilter) are dropped while the backlog is full and counted in
// Status.Lost; measured here, 3–36 such records of other processes per 5 s
// of overload, none of the throttled load's.
//
// Primary, reader stalled: with the socket full the kernel's sender waits
// 100 ms, then gives up; the socket reports ENOBUFS (Stats.ENOBUFS) and the
// records go to a retry queue of backlog_limit entries, whose overflow
// counts in Status.Lost; records that then fail again are written to the
// console and dropped uncounted (unless booted with audit=1). Measured
// with an 8 KiB socket and 300 execs (TestPrimaryStall): a 300 ms stall
// lost nothing, 1 s lost one record (Lost +1), 3 s lost 16–25 events
// (19–24 serials never seen) with Lost +3 or +4.
// The default buffer (16 MiB; the kernel grants 32) held about 25k records
// of 300 bytes. So ENOBUFS means records may be gone in this mode too.
//
// Listener: the kernel drops multicast copies when the socket is full;
// recv then reports ENOBUFS (counted; Receive goes on) and Status.Lost
// does not move. Which records went missing shows only as serial gaps.
//
// Close: records received by the socket but not yet read are counted in
// Stats.Discarded. Between Close and the next daemon's registration the
// kernel writes records to its console only.
//
// # User records
//
// SendUser sends text NUL-terminated (the kernel overwrites the last
// byte of the payload with a NUL) and refuses text the kernel would cut
// (over 8560 bytes) or that would break the one-line record format (NUL,
// CR, LF). The kernel acks and discards user records while audit is
// disabled. In the stream the record reads
// `audit(…): pid= uid= auid= ses= [subj=] msg='TEXT'`.
package auditnl
