package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/core/engine"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/surface/peer"
)

// Core runs functions on the daemon's engine.
type Core interface {
	// Do runs f on the core goroutine, after every kernel event that
	// happened before the call has been applied to the engine.
	Do(ctx context.Context, f func(e *engine.Engine) error) error
}

// Config configures a Server. Zero values mean the documented defaults
// (docs/api.md says what each limit defends).
type Config struct {
	Path string      // socket path; default /run/contid/contid.sock
	Mode os.FileMode // socket mode; default 0666: every local process may ask, the checks decide
	// MaxConns bounds connections in all (default 64); Reserved of them
	// (default 16) only privileged callers (CAP_AUDIT_CONTROL in the
	// initial user namespace) may take; PerUID (default 8) bounds each
	// other uid. A connection over a limit is refused at once (EAGAIN).
	MaxConns, Reserved, PerUID int
	// Timeouts: a request's headers (default 2 s), the whole request
	// (default 5 s), an idle keep-alive connection (default 5 s), the
	// answer (default 30 s: the core may be busy).
	ReadHeaderTimeout, ReadTimeout, IdleTimeout, WriteTimeout time.Duration
	// ListRate bounds, per uid, the listings that cost work per task
	// outside the core (a caller in its own pid namespace, or one without
	// CAP_SYS_PTRACE whose exe paths are checked): default 4 per second,
	// bursts of 8.
	ListRate  float64
	ListBurst int
	MaxBody   int64 // request body bytes; default 4096
	Now       func() time.Time
	Status    func() Status // counters for /v1/status; optional
	// KernelContid reads a task's contid from kernel task storage; optional.
	KernelContid func(tid int32) (contid.ID, bool, error)

	noPeerPidFD bool // as before Linux 6.5 (tests)
	nsFallback  bool // translate pids from NSpid, as before Linux 6.11 (tests)
}

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/contid/contid.sock"

// Server serves the API.
type Server struct {
	pidns ns.ID // the daemon's own pid namespace
	cfg   Config
	core  Core
	log   *slog.Logger
	http  *http.Server
	ln    *listener
	lists *listLimiter
}

type connKey struct{}

func (c *Config) defaults() {
	if c.Path == "" {
		c.Path = DefaultSocket
	}
	if c.Mode == 0 {
		c.Mode = 0o666
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.Reserved <= 0 {
		c.Reserved = 16
	}
	if c.Reserved >= c.MaxConns {
		c.Reserved = c.MaxConns / 2
	}
	if c.PerUID <= 0 {
		c.PerUID = 8
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.ReadHeaderTimeout, 2 * time.Second}, {&c.ReadTimeout, 5 * time.Second}, {&c.IdleTimeout, 5 * time.Second}, {&c.WriteTimeout, 30 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.v
		}
	}
	if c.ListRate <= 0 {
		c.ListRate = 4
	}
	if c.ListBurst <= 0 {
		c.ListBurst = 8
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Listen creates the socket (see bind). A stale socket file is replaced; a
// socket a live daemon still answers on is an error.
func Listen(cfg Config, core Core, log *slog.Logger) (*Server, error) {
	cfg.defaults()
	ln, err := bind(cfg.Path, cfg.Mode)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, core: core, log: log, lists: newListLimiter(cfg.ListRate, cfg.ListBurst)}
	s.ln = &listener{UnixListener: ln, log: log, peerPidFD: !cfg.noPeerPidFD, lingering: make(chan struct{}, 64),
		adm: admission{max: cfg.MaxConns, reserved: cfg.Reserved, perUID: cfg.PerUID, byUID: map[uint32]int{}}}
	if s.pidns, err = procfs.Host.SelfNSID(ns.PID); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/contid", s.handle(s.setContid))
	mux.HandleFunc("POST /v1/capcontid", s.handle(s.setCapcontid))
	mux.HandleFunc("GET /v1/tasks/{pid}", s.handle(s.task))
	mux.HandleFunc("GET /v1/tasks", s.handle(s.tasks))
	mux.HandleFunc("GET /v1/containers", s.handle(s.containers))
	mux.HandleFunc("GET /v1/status", s.handle(s.status))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    8 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting, lets requests finish, and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	os.Remove(s.cfg.Path)
	return err
}

// caller is who sent a request, as the kernel says.
type caller struct {
	*peer.Peer
	capable bool // CAP_AUDIT_CONTROL in the initial user namespace (peer.Capable)
	ptracer bool // CAP_SYS_PTRACE there: may read every task's exe, as /proc lets it
	// foreign: the caller is in another pid namespace than the daemon (a
	// process inside a container): pids in its requests and answers are
	// those of its namespace.
	foreign bool
}

type handlerFunc func(r *http.Request, c *caller) (any, error)

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, ok := r.Context().Value(connKey{}).(*conn)
		if !ok {
			writeErr(w, refuse(unix.EPERM, "not a unix socket connection"))
			return
		}
		now, err := conn.peer.Check()
		switch {
		case errors.Is(err, peer.ErrExec):
			// Another image holds the connection now: serve it nothing
			// more; a client that exec'd on purpose reconnects.
			w.Header().Set("Connection", "close")
			s.log.Info("api: refused a request: the connecting process exec'd since it connected",
				"pid", conn.peer.PID, "uid", conn.peer.Conn.UID)
			writeErr(w, refuse(unix.EPERM, err.Error()))
			return
		case err != nil:
			w.Header().Set("Connection", "close")
			writeErr(w, refuse(unix.ESRCH, "the caller exited: "+err.Error()))
			return
		}
		c := &caller{Peer: &conn.peer, capable: conn.peer.Capable(now, procfs.CapAuditControl),
			ptracer: conn.peer.Capable(now, procfs.CapSysPtrace), foreign: now.PidNS != s.pidns}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		out, err := h(r, c)
		if err != nil {
			s.log.Debug("api: refused", "pid", c.PID, "uid", c.Conn.UID, "path", r.URL.Path, "err", err)
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}
}

func refuse(n unix.Errno, msg string) *engine.Error { return &engine.Error{Errno: n, Reason: msg} }

func writeErr(w http.ResponseWriter, err error) {
	var ee *engine.Error
	if !errors.As(err, &ee) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			ee = refuse(unix.EAGAIN, err.Error())
		} else {
			ee = refuse(unix.EIO, err.Error())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(ee.Errno))
	json.NewEncoder(w).Encode(Error{Errno: engine.ErrnoName(ee.Errno), Code: int(ee.Errno), Message: ee.Reason})
}

// decode reads exactly one JSON object with known fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return refuse(unix.E2BIG, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
		}
		return refuse(unix.EINVAL, "bad request body: "+err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return refuse(unix.EINVAL, "bad request body: data after the JSON object")
	}
	return nil
}

// who resolves the caller in the engine: alive now, so its pid names it.
func who(e *engine.Engine, c *caller) (engine.TaskInfo, error) {
	if err := c.Alive(); err != nil {
		return engine.TaskInfo{}, refuse(unix.ESRCH, "the caller exited")
	}
	ti, ok := e.Task(c.PID)
	if !ok {
		return engine.TaskInfo{}, refuse(unix.EPERM, "the caller is not a tracked process")
	}
	return ti, nil
}

// target is a task named race-free: host pid and start time.
type target struct {
	pid   int32 // 0: none (not in the caller's pid namespace)
	start uint64
}

// resolve maps a pid as the caller names it to a host task, off the core.
// A caller in another pid namespace names the pids of its own namespace
// (and of namespaces nested in it): the kernel translates the number
// (procfs.PidNS.From), and the start time read afterwards pins the task, so
// the core can check that the engine's task of that pid is the same one.
func (s *Server) resolve(ctx context.Context, c *caller, pid int32) (target, error) {
	if !c.foreign {
		return target{pid: pid}, nil
	}
	pns, err := s.openNS(c)
	if err != nil {
		return target{}, err
	}
	defer pns.Close()
	candidates := func() []int32 {
		// Before Linux 6.11 only: the tasks of the caller's namespace.
		var out []int32
		s.core.Do(ctx, func(e *engine.Engine) error {
			dev, ino := pns.Ident()
			for _, t := range e.Tasks() {
				if n := t.NS[ns.PID]; uint64(n.Dev) == dev && uint64(n.Ino) == ino {
					out = append(out, t.TID)
				}
			}
			return nil
		})
		return out
	}
	host, err := pns.From(pid, candidates)
	if err != nil {
		return target{}, nil
	}
	st, err := procfs.Host.Stat(host)
	if err != nil {
		return target{}, nil
	}
	// Still the task the caller named (not exited and reused meanwhile).
	if again, err := pns.In(host); err != nil || again != pid {
		return target{}, nil
	}
	return target{pid: host, start: st.StartTime}, nil
}

// task finds a resolved target in the engine.
func (t target) task(e *engine.Engine) (engine.TaskInfo, bool) {
	if t.pid == 0 {
		return engine.TaskInfo{}, false
	}
	ti, ok := e.Task(t.pid)
	if !ok || t.start != 0 && ti.Start != t.start {
		return engine.TaskInfo{}, false
	}
	return ti, true
}

func (s *Server) openNS(c *caller) (*procfs.PidNS, error) {
	pns, err := c.OpenPidNS()
	if err != nil {
		return nil, refuse(unix.ESRCH, "the caller exited")
	}
	if s.cfg.nsFallback {
		pns.Fallback()
	}
	return pns, nil
}

func (s *Server) setContid(r *http.Request, c *caller) (any, error) {
	var req SetRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.Name) > 256 {
		return nil, refuse(unix.EINVAL, "name longer than 256 bytes")
	}
	return s.change(r, c, req.PID, func(e *engine.Engine, ev engine.SetContid) error {
		ev.ForParent, ev.Value, ev.Name = req.ForParent, req.Contid, req.Name
		_, err := e.SetContid(ev)
		return err
	})
}

func (s *Server) setCapcontid(r *http.Request, c *caller) (any, error) {
	var req CapRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return s.change(r, c, req.PID, func(e *engine.Engine, ev engine.SetContid) error {
		return e.SetCapcontid(engine.SetCapcontid{Time: ev.Time, Caller: ev.Caller, CallerCap: ev.CallerCap,
			Target: ev.Target, ForParent: req.ForParent, Value: req.Value})
	})
}

// change runs a request that changes target (as the caller names it) on
// the core: it resolves the caller and the target, fills the request's
// time, caller and target, and answers the target as it is afterwards.
func (s *Server) change(r *http.Request, c *caller, pid int32, f func(*engine.Engine, engine.SetContid) error) (any, error) {
	tg, err := s.resolve(r.Context(), c, pid)
	if err != nil {
		return nil, err
	}
	var out engine.TaskInfo
	err = s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		// Not in the caller's namespace: the engine still refuses (ESRCH)
		// and logs the attempt, against pid 0, which no task has; the
		// caller's number could name an unrelated host task.
		host := tg.pid
		if _, ok := tg.task(e); !ok && c.foreign {
			host = 0
		}
		err = f(e, engine.SetContid{Time: s.cfg.Now().UnixNano(), Caller: engine.TaskRef{PID: me.TGID, Start: me.Start},
			CallerCap: c.capable, Target: host})
		if err != nil {
			return err
		}
		out, _ = e.Task(host)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ts, err := s.present(c, []engine.TaskInfo{out})
	if err != nil || len(ts) == 0 {
		return Task{}, err
	}
	return ts[0], nil
}

// visible reports whether a caller may see a chain: a contained caller
// sees only its own container and those nested in it (spec §8: no reading
// other containers through contid); an uncontained one sees all, as /proc
// shows it all processes (in its pid namespace: present).
func visible(callerChain, chain contid.Chain) bool {
	return len(callerChain) == 0 || chain.Contains(callerChain[0])
}

func (s *Server) task(r *http.Request, c *caller) (any, error) {
	pid, err := strconv.ParseInt(r.PathValue("pid"), 10, 32)
	if err != nil || pid <= 0 {
		return nil, refuse(unix.EINVAL, "pid must be a positive number")
	}
	notFound := refuse(unix.ESRCH, "no process with pid "+strconv.Itoa(int(pid)))
	tg, err := s.resolve(r.Context(), c, int32(pid))
	if err != nil {
		return nil, err
	}
	var t engine.TaskInfo
	err = s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		var ok bool
		if t, ok = tg.task(e); !ok || !visible(me.Chain, t.Chain) {
			return notFound
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ts, err := s.present(c, []engine.TaskInfo{t})
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, notFound
	}
	out := ts[0]
	if s.cfg.KernelContid != nil {
		if id, ok, err := s.cfg.KernelContid(t.TID); err == nil && ok {
			v := uint64(id)
			out.KernelContid = &v
		}
	}
	return out, nil
}

// costly reports whether answering a listing for c reads /proc per task
// (pid translation, exe checks), work done off the core and bounded per
// uid.
func (c *caller) costly() bool { return c.foreign || !c.ptracer }

func (s *Server) tasks(r *http.Request, c *caller) (any, error) {
	var snap []engine.TaskInfo
	err := s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		// The core only copies; per-task /proc reads happen in present.
		for _, t := range e.Tasks() {
			if visible(me.Chain, t.Chain) {
				snap = append(snap, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.costly() {
		release, err := s.lists.wait(r.Context(), c.Conn.UID)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	return s.present(c, snap)
}

// present turns engine tasks into the caller's view, off the core: pids
// in the caller's pid namespace (tasks outside it left out, a parent
// outside it 0), and the exe only where /proc would show it (exeVisible).
func (s *Server) present(c *caller, ts []engine.TaskInfo) ([]Task, error) {
	v, err := s.view(c)
	if err != nil {
		return nil, err
	}
	defer v.close()
	out := make([]Task, 0, len(ts))
	for _, t := range ts {
		x := taskOf(t)
		if x.PID = v.pid(t.TID); x.PID == 0 {
			continue
		}
		x.TGID, x.PPID = v.pid(t.TGID), v.pid(t.PPID)
		if !exeVisible(c, t.TID) {
			x.Exe = ""
		}
		out = append(out, x)
	}
	return out, nil
}

// exeVisible applies /proc's rule for /proc/PID/exe (ptrace read access):
// a caller with CAP_SYS_PTRACE in the initial user namespace reads every
// task's; another caller only those of tasks whose /proc directory the
// kernel gives to the caller's uid and gid, which it does for a dumpable
// task running with those effective ids (a non-dumpable one, such as a
// setuid program, is root's there). A caller whose uid is 0 without the
// capability sees none, since root's non-dumpable tasks look the same.
func exeVisible(c *caller, tid int32) bool {
	if c.ptracer {
		return true
	}
	if c.Conn.UID == 0 {
		return false
	}
	uid, gid, err := procfs.Host.Owner(tid)
	return err == nil && uid == c.Conn.UID && gid == c.Conn.GID
}

// pidView maps host pids to the caller's pid namespace.
type pidView struct {
	ns *procfs.PidNS // nil: the daemon's own namespace
	m  map[int32]int32
}

func (s *Server) view(c *caller) (*pidView, error) {
	if !c.foreign {
		return &pidView{}, nil
	}
	pns, err := s.openNS(c)
	if err != nil {
		return nil, err
	}
	return &pidView{ns: pns, m: map[int32]int32{}}, nil
}

// pid returns host pid h as the caller sees it, 0 when it cannot. The
// number is translated right after the snapshot; a task that exited since
// and whose pid was reused would need pid_max allocations in between (the
// kernel hands out pids cyclically).
func (v *pidView) pid(h int32) int32 {
	if v.ns == nil || h == 0 {
		return h
	}
	if x, ok := v.m[h]; ok {
		return x
	}
	x, err := v.ns.In(h)
	if err != nil {
		x = 0
	}
	v.m[h] = x
	return x
}

func (v *pidView) close() {
	if v.ns != nil {
		v.ns.Close()
	}
}

func (s *Server) containers(r *http.Request, c *caller) (any, error) {
	var conts []engine.ContainerInfo
	// An uncontained caller in its own pid namespace (an unregistered
	// container) sees the containers with a task in its namespace.
	var byMembers bool
	var members []engine.TaskInfo
	err := s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		for _, ci := range e.Containers() {
			if visible(me.Chain, ci.Chain) {
				conts = append(conts, ci)
			}
		}
		if byMembers = c.foreign && len(me.Chain) == 0; byMembers {
			for _, t := range e.Tasks() {
				if len(t.Chain) > 0 {
					members = append(members, t)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.foreign {
		release, err := s.lists.wait(r.Context(), c.Conn.UID)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	v, err := s.view(c)
	if err != nil {
		return nil, err
	}
	defer v.close()
	mine := map[contid.ID]bool{}
	for _, t := range members {
		if v.pid(t.TID) != 0 {
			mine[t.Chain[0]] = true
		}
	}
	out := []Container{}
	for _, ci := range conts {
		if byMembers && !mine[ci.Chain[0]] {
			continue
		}
		co := Container{Contid: uint64(ci.Chain[0]), Chain: ids(ci.Chain), Name: ci.Name, OwnerPID: v.pid(ci.Owner.PID),
			Tasks: ci.Tasks, Children: ci.Children, Netns: []string{}}
		if co.OwnerPID != 0 {
			co.OwnerStart = ci.Owner.Start
		}
		for _, n := range ci.Netns {
			co.Netns = append(co.Netns, n.String())
		}
		out = append(out, co)
	}
	return out, nil
}

func (s *Server) status(r *http.Request, c *caller) (any, error) {
	var out Status
	if s.cfg.Status != nil {
		out = s.cfg.Status()
	}
	return out, s.core.Do(r.Context(), func(e *engine.Engine) error {
		_, err := who(e, c)
		return err
	})
}

func ids(c contid.Chain) []uint64 {
	out := make([]uint64, len(c))
	for i, id := range c {
		out[i] = uint64(id)
	}
	return out
}

func taskOf(t engine.TaskInfo) Task {
	out := Task{PID: t.TID, TGID: t.TGID, PPID: t.PPID, Chain: ids(t.Chain), Capcontid: t.Capcontid,
		Comm: t.Subject.Comm, Exe: t.Subject.Exe, UID: t.Subject.UID}
	if len(t.Chain) > 0 {
		id := uint64(t.Chain[0])
		out.Contid = &id
	}
	return out
}
