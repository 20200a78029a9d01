// Package api is contid's registration API: HTTP/JSON on a unix socket.
// The caller's identity comes from the socket (package peer), never from a
// request body: taken at accept, and each request refused once the
// connecting process has exec'd. Connections are admitted per uid, with
// slots kept for privileged callers and refusal (EAGAIN) instead of
// waiting. The server runs every request on the daemon's core through
// Core.Do, which sees the engine after all kernel events up to the request
// have been applied; the core only copies, and per-task /proc work (pid
// translation, exe visibility) happens on the request's goroutine, rate
// limited per uid. The client is what the CLI and the OCI hook use.
//
// Endpoints (all JSON):
//
//	POST /v1/contid      {"pid":N,"contid":"C","for_parent":bool,"name":"…"} -> Task
//	POST /v1/capcontid   {"pid":N,"value":"0|1","for_parent":bool}           -> Task
//	GET  /v1/tasks/{pid}                                                      -> Task
//	GET  /v1/tasks                                                            -> [Task]
//	GET  /v1/containers                                                       -> [Container]
//	GET  /v1/status                                                           -> Status
//
// A refusal is an HTTP error status with an Error body naming the errno.
package api

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetRequest asks to set a contid (spec §3). Contid is a string so that
// every value a caller sends, valid or not, is logged as sent.
type SetRequest struct {
	PID       int32  `json:"pid"`
	Contid    string `json:"contid"`
	ForParent bool   `json:"for_parent,omitempty"`
	Name      string `json:"name,omitempty"`
}

// CapRequest grants or revokes capcontid (spec §3.2).
type CapRequest struct {
	PID       int32  `json:"pid"`
	Value     string `json:"value"`
	ForParent bool   `json:"for_parent,omitempty"`
}

// Task is one tracked task.
type Task struct {
	PID    int32    `json:"pid"`
	TGID   int32    `json:"tgid"`
	PPID   int32    `json:"ppid"`
	Contid *uint64  `json:"contid"` // null when unset
	Chain  []uint64 `json:"chain"`  // innermost first; empty when unset
	// KernelContid is what the kernel's task storage holds for the task,
	// read at query time (single-task queries only; null when none).
	KernelContid *uint64 `json:"kernel_contid,omitempty"`
	Capcontid    bool    `json:"capcontid,omitempty"`
	Comm         string  `json:"comm,omitempty"`
	Exe          string  `json:"exe,omitempty"`
	UID          uint32  `json:"uid"`
}

// Container is one live container object.
type Container struct {
	Contid     uint64   `json:"contid"`
	Chain      []uint64 `json:"chain"`
	Name       string   `json:"name,omitempty"`
	OwnerPID   int32    `json:"owner_pid"`
	OwnerStart uint64   `json:"owner_start"`
	Tasks      int      `json:"tasks"`
	Children   int      `json:"children"`
	Netns      []string `json:"netns"`
}

// Status is the daemon's counters.
type Status struct {
	Source   string            `json:"source"`          // where task events come from
	Audit    string            `json:"audit,omitempty"` // where kernel audit records come from
	Tasks    int               `json:"tasks"`
	Counters map[string]uint64 `json:"counters"`
}

// Error is a refusal: the errno spec §3 names and a sentence.
type Error struct {
	Errno   string `json:"errno"`
	Code    int    `json:"code"` // the errno's number
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Errno, e.Message) }

// Unwrap exposes the errno, so errors.Is(err, unix.EEXIST) works on the
// client side too.
func (e *Error) Unwrap() error { return unix.Errno(e.Code) }

// httpStatus maps an errno to the HTTP status of its response.
func httpStatus(n unix.Errno) int {
	switch n {
	case unix.EPERM, unix.EACCES:
		return 403
	case unix.ESRCH, unix.ENOENT:
		return 404
	case unix.EINVAL, unix.ERANGE:
		return 400
	case unix.EBUSY, unix.EEXIST, unix.ENOTUNIQ, unix.EXDEV:
		return 409
	case unix.E2BIG:
		return 413
	case unix.EAGAIN:
		return 503
	case unix.EDQUOT:
		return 429
	}
	return 500
}
