// Package tracker is the kernel side of contid's task tracking (spec §4):
// BPF programs that keep each task's contid in BPF task storage, copy it to
// every task the task creates, and report fork, exec, exit and namespace
// changes through a ring buffer. decode.go is pure and decodes the ring
// buffer's samples; the *_linux.go files load and drive the programs.
//
// # Inheritance is race-free
//
// The contid lives in a BPF_MAP_TYPE_TASK_STORAGE map. A task's contid is its
// own value, or else its thread group leader's (spec §3: a TID names its
// thread group). The program "inherit" runs at tracepoint task_newtask, at the
// end of copy_process and before the new task is first woken, for every new
// task: fork, vfork, clone, clone3, new threads, and tasks that bypass
// kernel_clone such as io_uring workers (sched_process_fork misses those;
// measured). It copies the creating task's contid to a new process, so a
// child has its contid before its first instruction, and exec keeps it
// (storage belongs to the task, which exec does not replace). A new thread
// whose leader holds the same value gets no storage and reads the leader's:
// creating and freeing storage was most of what the tracker cost a thread's
// life (inherit: 1.6 µs per run with storage, 0.19 µs without; the thread
// benchmark). The leader's storage outlives its exit (a zombie leader stays
// until its group is reaped) except when a thread execs and replaces it
// (de_thread): "keep_on_exec", at sched_prepare_exec (Linux 6.10+), first
// gives such a thread the leader's value. Without that tracepoint every
// thread gets storage of its own, as before. A task without a contid creates
// no storage for its children: untagged stays untagged.
//
// SetContidFD sets one task's value through a pidfd. SetGroupFD tags a whole
// thread group without a window: it first tags the leader with a group flag
// (from then on the kernel gives the leader's value to whatever any untagged
// thread of the group creates), then tags every listed thread, then re-lists
// until nothing changes; see its comment for the argument.
//
// # Restarts
//
// Open pins, under Config.PinDir (default /sys/fs/bpf/contid):
//
//	contid_task   the task-storage map (the contids)
//	contid_stats  the loss counters (per-CPU array)
//	inherit       the link of the inheritance program
//	keep_on_exec  the link of the program that keeps a thread's value across exec
//
// Close leaves them: while no tracker runs, contids stay and are still
// inherited; the next Open reuses the map (an incompatible old pin is an
// error wrapping ebpf.ErrMapIncompatible, never silently replaced) and
// replaces the two links atomically (each new one is attached before the old
// pin is renamed over; keep_on_exec first, as inherit relies on it). Events during the downtime are not recorded.
// Unpin removes the pins, detaching inheritance and freeing the contids.
//
// # Events and loss
//
// Every event carries the task's tid, tgid, start times, uid, loginuid,
// sessionid, comm, its contid as the kernel map held it at that moment, and
// the task's namespaces (active pid and time namespace, as /proc/PID/ns
// shows, plus pid and time for children). Two events leave the namespaces
// zero, meaning "unchanged", because reading them was most of what those
// events cost: the fork of a thread without CLONE_NEW* flags (it shares its
// creator's nsproxy) and the exit of a thread still sharing its leader's
// nsproxy (it changed nothing since its creation). Namespace IDs hold the nsfs
// inode, the kernel's unique ns_id (Linux 6.18+, else 0) and the nsfs device,
// which the kernel side cannot see: it is stat(2)'s st_dev of
// /proc/self/ns/net, the same for every namespace since all nsfs inodes share
// one superblock.
//
// Nothing is lost silently: an event the ring buffer has no room for is
// counted in Stats.Lost, a child whose storage could not be allocated in
// Stats.InheritFailures. Events of one task arrive in order; events of
// different CPUs may be reordered by microseconds.
//
// Wakeups of the reader are batched (Config.Batch): each costs the producing
// task several microseconds in a VM, most of what a fork paid the tracker
// when every event woke the reader. An event after a quiet period still
// wakes the reader at once; during a burst an event waits at most about
// Batch.
//
// Namespace changes by setns and unshare are found by a periodic scan
// (Config.NSScan, an iter/task program that reports tasks whose namespaces
// changed since last reported) and show in every fork, exec and exit event.
// Hooking the syscalls instead (Config.NSSyscalls) is exact and immediate,
// but enabling any syscall tracepoint sends every syscall of every task
// through the kernel's syscall-tracing slow path, about +50 ns per syscall
// on the CI machine (+25–30% on a getppid loop), so it is opt-in.
//
// # Concurrency
//
// Read is for one goroutine at a time; all other methods of Tracker are safe
// for concurrent use and with Read. Wait is the other way to read: it only
// waits for the kernel's wakeup, and the caller drains with TryRead from
// any goroutine; one goroutine at a time, not with Read. Close interrupts
// Read and Wait and must not race with the other methods. Decode is a pure
// function.
package tracker
