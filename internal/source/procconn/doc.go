// Package procconn is contid's fallback source of task events when eBPF is
// unavailable: the kernel's process-events connector (NETLINK_CONNECTOR,
// CN_IDX_PROC/CN_VAL_PROC). It yields the task events the eBPF tracker
// does (package taskevent), and its Read, TryRead and Close mean what the
// tracker's do, so the daemon drives either through one interface. decode.go is pure
// and decodes the connector's datagrams; the *_linux.go files subscribe,
// receive, and look up in /proc what the events lack.
//
// # Inheritance is best effort
//
// Nothing in the kernel holds contids: every event has HasContid false and
// Contid contid.Unset. The daemon's engine attributes each new task from
// its parent's state as of the fork event, applying events in order, so a
// child forked after its parent was registered is attributed even when the
// daemon reads the fork later. But registrations live only in the daemon
// and do not survive its restart, and nothing prevents loss: when the
// daemon falls behind, the kernel drops events, and that is counted (see
// Stats), not prevented. A lost fork leaves a task the engine does not
// know; a lost exit leaves a stale one until its pid is reused.
//
// # What events carry
//
// Fork, exec and exit events (KindFork, KindExec, KindExit; never KindNS)
// carry:
//
//   - Time: the kernel's timestamp_ns, from ktime_get_ns, which is
//     CLOCK_MONOTONIC (cn_proc.h says "since system boot", but the clock
//     stops during suspend), the tracker's clock.
//   - TID and TGID of the task (for a fork, the child), in the initial pid
//     namespace: the kernel accepts only listeners there.
//   - KindFork: ParentTID and ParentTGID, and Thread. The kernel reports
//     the child's real_parent. For a new process that is the creating
//     thread, except under CLONE_PARENT (runc's nsexec), where it is the
//     creator's parent: the creator is then not reported, and CloneFlags is
//     0 for every event. A new thread (CLONE_THREAD: the only way a task
//     gets a tid other than its tgid, so Thread is TID != TGID) shares its
//     creator's real_parent, the parent of the whole process; its creator is
//     some thread of the process, so ParentTID and ParentTGID are the
//     process (its leader's tid).
//   - KindExit: ExitCode, the wait status as the kernel keeps it (exit 3
//     is 0x300). Every thread's exit is reported; the connector does not
//     say which is the group's last, so GroupDead and GroupDeadExact are
//     false.
//   - KindExec: OldTID is 0. When a non-leader thread execs, the kernel
//     reports the exits of the other threads, the old leader's included,
//     then the exec under the leader's tid; the exec'ing thread's old tid
//     is never reported again.
//
// No namespace data comes with the events: NS, PIDForChildren and
// TimeForChildren are zero (the engine reads a zero namespace as "as the
// parent"), and setns and unshare are not seen at all.
//
// The reader adds, best effort and as it decodes each event (Config.NoProcfs
// turns this off), from /proc/TID of a task that may have exited, or whose
// pid may have been reused, by then:
//
//   - KindFork and KindExec: StartBoottime, from /proc/TID/stat's starttime,
//     so in /proc's 10 ms ticks (the unit the daemon compares anyway). A task
//     whose start is later than the event's time is another task that took
//     the pid, and is not used; a reuse within the same tick goes unnoticed.
//     0 when the task is gone.
//   - KindExec: Comm (from the same stat), and UID (real uid, from status),
//     AUID (loginuid) and Ses (sessionid). A fork's Comm stays empty: the
//     child may have exec'd by the time it is read.
//
// UID, AUID and Ses that were not read hold 4294967295, the kernel's
// invalid id (also how an unset loginuid or session reads).
//
// # Loss, filtering and sizing
//
// The kernel queues each event on the socket from the context of the task
// that caused it, before that task goes on; when the receive buffer is
// full it drops the event and the next recv fails with ENOBUFS, which Read
// counts (Stats.Overflows) before it reads on. The connector also numbers
// its messages per CPU; a listener sent every message detects the gaps
// (Stats.SeqGaps, Stats.SeqSkipped), which also catch messages the kernel
// failed to allocate. Since Linux 6.6, Open asks the kernel to send only
// fork, exec and exit events (Config.AllEvents asks for everything);
// filtered events still take numbers, so gaps are not counted then. On older
// kernels Open subscribes to everything and drops the rest itself.
//
// The receive buffer is 16 MiB by default (SO_RCVBUFFORCE, which needs
// CAP_NET_ADMIN; Open falls back to SO_RCVBUF, capped by
// net.core.rmem_max, and warns). It holds about 40,000 events the reader
// has not got to (each costs ~830 bytes of the kernel's accounting). On the
// CI machine (2 vCPU) the reader, /proc lookups included, kept up with
// 80,000 fork-only children at up to ~9,500 forks/s with nothing lost; the
// kernel's default buffer lost events at that rate.
//
// Subscribing needs a process in the initial user and pid namespaces: the
// kernel silently ignores anyone else, which Open reports as an error once
// its wait for the kernel's acknowledgement times out (1 s). Older kernels
// also require CAP_NET_ADMIN (6.18 lets any user listen; measured).
//
// # Concurrency
//
// Read is for one goroutine at a time. TryRead must not be called while
// Read runs (it would wait for Read to return). Stats is safe from any
// goroutine at any time. Close may be called concurrently with Read, which
// it interrupts with an error wrapping os.ErrClosed, and more than once.
// decode is a pure function.
package procconn
