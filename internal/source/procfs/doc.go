// Package procfs is contid's one reader of what the kernel says about
// processes: the files of /proc (stat, status, auxv, comm, loginuid,
// sessionid, exe, ns, task, cgroup, and mountinfo for the cgroup mounts)
// and pidfds. Other packages read processes through it.
//
// parse.go and cgroup.go hold the parsers: pure functions of the bytes
// /proc gives, each fuzzed, because a process controls part of what they
// read (its comm, for one). There is one parser per file. The *_linux.go
// files do the I/O:
//
//   - FS is a proc filesystem at a directory; Host is /proc. Tests point
//     an FS at a fake tree. Reads of a task that is gone give errors
//     wrapping ESRCH.
//   - Scan lists every task at start-up (Task, in procfs's own terms:
//     callers convert).
//   - OpenThread, PidfdIDs and CheckStart name tasks race-free through
//     pidfds, checking that what /proc said about a pid was about the
//     pidfd's task.
//   - PidNS translates pids between pid namespaces.
//
// What /proc shows is the present: a task may exit, and its pid be reused,
// between two reads. Callers that must not be fooled hold a pidfd, or
// compare start times, and read again after (see CheckStart).
//
// Start times are clock ticks since boot (USER_HZ, 100 on Linux), the unit
// of /proc/PID/stat's starttime; the daemon converts the tracker's
// start_boottime to the same unit so identities compare.
//
// FS and the functions are safe for concurrent use; a PidNS is for one
// goroutine.
package procfs
