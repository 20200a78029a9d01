// Package reassembly groups audit records into events: the records that
// share a stamp msg=audit(SEC.MSEC:SERIAL), from the kernel's stream as
// contid receives it (netlink, or auditd's plugin feed), in which events
// of different CPUs interleave and arrive slightly out of serial order and
// records may be lost. It detects that loss from serial gaps (spec §8) and
// reports it to its Sink; nothing is dropped silently.
//
// # Contract
//
//   - Pure and replayable: no goroutines, no locks, no clock, no I/O. Time
//     is event time: the newest stamp among the stream's own records, or
//     the newest Advance, whichever is later. The same records and Advance
//     calls in give the same calls to the Sink out. A Reassembler is for
//     one goroutine.
//   - Every record pushed is delivered exactly once, in exactly one Event,
//     by the time Flush returns; records of an event keep their arrival
//     order. Events are delivered when they end (below), so in completion
//     order, not serial order.
//   - At most Config.MaxInFlight events are held at once after each call.
//     Push does constant work per record apart from the deliveries it
//     causes (and a binary search over missing serials); steady state
//     allocates nothing per
//     record (event memory is recycled, which is why Event.Records is only
//     valid during the Sink call).
//   - Loss is part of the interface: Sink.Lost reports serial gaps,
//     events delivered without their end, records that came after their
//     event, and serial discontinuities (see Loss).
//
// # When an event ends
//
// An event (records sharing node, seconds, milliseconds and serial) ends
//
//   - at its EOE record (1320), which the kernel writes last in every event
//     it builds at syscall exit (audit_log_exit) and which is kept as the
//     event's last record;
//   - for an event opened by a Standalone record, as soon as a record of
//     another stamp arrives, or at EndRead (the end of the read that
//     brought it), Advance or Flush: it is delivered in arrival order and
//     never waits for the timeout;
//   - when it times out: Config.Timeout of event time passed since its last
//     record arrived. An event holding an InSyscall record is then
//     Incomplete; one made only of MaybeAlone records was simply alone;
//   - when MaxInFlight would be exceeded (the event waiting longest goes),
//     or at Flush — with the same rule for Incomplete.
//
// Time is counted from each record's arrival, measured in event time, not
// from the event's own stamp: a syscall event is stamped with the time the
// syscall began (the audit context's ctime), which for a blocking syscall
// can be long before its records are written.
//
// # Which types end their event at once
//
// Whether a kernel record stands alone depends on the context it is logged
// in, not only on its type: audit_log_start stamps a record with the
// current task's syscall context when there is one (auditsc_get_stamp),
// which also makes that syscall's SYSCALL … EOE records follow at exit, and
// with a fresh serial otherwise (no context, or the task not in a syscall).
// The three classes (Classify):
//
//	class        types                                     why
//	Standalone   1005 USER, 1100–1199, 2100–2999           user-space messages: audit_receive_msg logs
//	             (contid's 2900–2907 among them)            them with no context (audit_log_user_recv_msg)
//	             1200–1299 DAEMON_*                        written by auditd itself, never by the kernel
//	             2000 KERNEL                               audit_init, before any task context
//	             1324 NETFILTER_PKT                        the iptables/ebtables AUDIT target (audit_tg)
//	                                                       and nftables `log level audit`
//	                                                       (nft_log_eval_audit) call audit_log_start
//	                                                       with a NULL context: a fresh serial always,
//	                                                       even when the packet is sent from inside
//	                                                       an audited syscall
//	             1326 SECCOMP                              seccomp runs before syscall audit entry
//	                                                       (syscall_trace_enter), so no context is in use
//	             1701 ANOM_ABEND                           core dumps run on the way back to user mode,
//	                                                       after syscall audit exit
//	InSyscall    1300 SYSCALL, 1302 PATH, 1303 IPC,        only written by audit_log_exit (or io_uring's
//	             1304 SOCKETCALL, 1306 SOCKADDR, 1307 CWD,  exit) from state kept in the context; EOE
//	             1309 EXECVE, 1311 IPC_SET_PERM, 1312–1315  always follows
//	             MQ_*, 1317 FD_PAIR, 1318 OBJ_PID,
//	             1320 EOE, 1321 BPRM_FCAPS, 1322 CAPSET,
//	             1323 MMAP, 1327 PROCTITLE, 1330 KERN_MODULE,
//	             1332 TIME_INJOFFSET, 1333 TIME_ADJNTPVAL,
//	             1336 URINGOP, 1337 OPENAT2
//	MaybeAlone   everything else: 1006 LOGIN, 1305          logged with audit_context(): part of a
//	             CONFIG_CHANGE, 1316 KERNEL_OTHER, 1319     syscall event when the task is in an audited
//	             TTY, 1325 NETFILTER_CFG, 1328 FEATURE_     syscall (the record comes first, SYSCALL …
//	             CHANGE, 1331 FANOTIFY,                     EOE at exit), alone otherwise (softirq,
//	             1334 BPF, 1335 EVENT_LISTENER, 1338–1339   workqueues, tasks created before audit was
//	             DM_*, 1400–1499 SELinux/MAC (AVC, …),      first enabled have no context)
//	             1500–1599 AppArmor, 1700 and 1702–1703
//	             ANOM_*, 1800–1899 INTEGRITY_*, 1420–1424
//	             LSM contexts and Landlock, unknown types
//
// This differs from auparse's audit_is_last_record and go-libaudit's
// reassembler, which also end an event at PROCTITLE (their input may lack
// EOE: auditd does not write EOE to its log), leave SECCOMP and ANOM_ABEND
// waiting for an end, and (auparse) take the netlabel MAC_* types
// 1406–1419, which are logged with the task's context, as single records.
// In the EOE-carrying stream contid reads, waiting for EOE is exact, and a
// MaybeAlone record costs only latency.
//
// A Standalone event stays open until a record of another stamp arrives
// or the read that brought it ends (EndRead), because records of the same
// stamp may follow it at once: contid's own
// logs put a CONTAINER_ID right after the user record it describes, and
// contid's own serial space may give CONTAINER_OP and NS_INFO one stamp.
// Should a kernel log a user message inside a syscall context (LSM-stacking
// patches posted for review do, to add MAC_TASK_CONTEXTS), its SYSCALL …
// EOE, arriving later, are delivered as a Late part.
//
// # Gap detection
//
// The kernel numbers events from one 32-bit counter (audit_serial), in
// increasing order; 4294967295 is followed by 0. Serials are compared in
// wrap-around order. Only serials below 2^32 of the stream's own node take
// part: contid's own serials (records.OwnSerialBase and above) and auditd's
// DAEMON_* records (numbered by auditd) never do.
//
// When an event with serial S arrives and S is past the highest serial
// seen, H, by more than one, the serials between are missing. They are
// counted as Gap only if still missing Timeout of event time after S
// arrived: events of other CPUs legitimately arrive a little out of order
// (and records that wait in the kernel's retry queue, longer), and a
// missing serial that arrives within the window is an ordinary event.
//
// The window of serials remembered runs from the first serial seen (or
// 2^24 behind H, whichever is nearer) to H. A serial inside it that is
// neither missing nor in flight was seen before: its record is Late —
// unless its stamp is newer than event time, which a straggler's cannot be
// (earlier records of its event carried the same stamp): then the
// counter has started again (a reboot, in a replayed log), a
// Discontinuity. A serial below the window is an event that was already on
// its way when the Reassembler started and is delivered without counting,
// unless it comes with a newer stamp and lies more than 2^16 below or is
// newer by more than Timeout: also a Discontinuity, as is a jump of more
// than 2^24 forward. After a Discontinuity the window starts again at the
// new serial. At most 1024 runs of missing serials are tracked; beyond
// that the oldest run counts as lost at once.
//
// Gaps count whole events the kernel numbered and the reader never got;
// records lost inside an event show as Incomplete (a lost EOE) or not at
// all (the kernel's own lost counter, auditnl's Status.Lost, counts them).
//
// # Node names
//
// Records with a node= prefix other than Config.Node (another host's
// records that auditd forwards) are keyed apart, never count toward gap
// detection, do not move event time and are never Late.
package reassembly
