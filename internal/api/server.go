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
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/engine"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/peer"
	"github.com/contid/contid/internal/procfs"
)

// Core runs functions on the daemon's engine.
type Core interface {
	// Do runs f on the core goroutine, after every kernel event that
	// happened before the call has been applied to the engine.
	Do(ctx context.Context, f func(e *engine.Engine) error) error
}

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	Path     string      // socket path; default /run/contid/contid.sock
	Mode     os.FileMode // socket mode; default 0666: every local process may ask, the checks decide
	MaxConns int         // concurrent connections; default 64
	MaxBody  int64       // request body bytes; default 4096
	Now      func() time.Time
	Status   func() Status // counters for /v1/status; optional
	// KernelContid reads a task's contid from kernel task storage; optional.
	KernelContid func(tid int32) (contid.ID, bool, error)
}

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/contid/contid.sock"

// Server serves the API.
type Server struct {
	pidns [2]uint64 // the daemon's own pid namespace
	cfg   Config
	core  Core
	log   *slog.Logger
	http  *http.Server
	ln    net.Listener
}

type connKey struct{}

// Listen creates the socket. A stale socket file is replaced; a socket a
// live daemon still answers on is an error.
func Listen(cfg Config, core Core, log *slog.Logger) (*Server, error) {
	if cfg.Path == "" {
		cfg.Path = DefaultSocket
	}
	if cfg.Mode == 0 {
		cfg.Mode = 0o666
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if c, err := net.Dial("unix", cfg.Path); err == nil {
		c.Close()
		return nil, fmt.Errorf("api: %s: another daemon is listening", cfg.Path)
	}
	if fi, err := os.Lstat(cfg.Path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket", cfg.Path)
		}
		os.Remove(cfg.Path)
	}
	ln, err := net.Listen("unix", cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if err := os.Chmod(cfg.Path, cfg.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{cfg: cfg, core: core, log: log, ln: &limitListener{Listener: ln, sem: make(chan struct{}, cfg.MaxConns)}}
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/pid", &self); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	s.pidns = [2]uint64{self.Dev, self.Ino}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/contid", s.handle(s.setContid))
	mux.HandleFunc("POST /v1/capcontid", s.handle(s.setCapcontid))
	mux.HandleFunc("GET /v1/tasks/{pid}", s.handle(s.task))
	mux.HandleFunc("GET /v1/tasks", s.handle(s.tasks))
	mux.HandleFunc("GET /v1/containers", s.handle(s.containers))
	mux.HandleFunc("GET /v1/status", s.handle(s.status))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
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
	peer.Peer
	capable bool // CAP_AUDIT_CONTROL in the initial user namespace
	// foreign: the caller is in another pid namespace than the daemon (a
	// process inside a container): pids in its requests and answers are
	// those of its namespace, nsDev:nsIno.
	foreign      bool
	nsDev, nsIno uint64
}

// hostPID maps a pid as the caller names it to the host's. A caller in
// another pid namespace names the pids of its own namespace: the task is
// the one in that namespace whose innermost NSpid is pid, checked against
// the engine's start time so a pid reused meanwhile never matches. Tasks in
// pid namespaces nested deeper than the caller's are not reachable this way.
func (c *caller) hostPID(e *engine.Engine, pid int32) (int32, error) {
	if !c.foreign {
		return pid, nil
	}
	for _, t := range e.Tasks() {
		n := t.NS[ns.PID]
		if uint64(n.Dev) != c.nsDev || uint64(n.Ino) != c.nsIno {
			continue
		}
		if nspid, err := peer.NSpid(t.TID); err != nil || nspid[len(nspid)-1] != pid {
			continue
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(int(t.TID)) + "/stat"); err == nil {
			if st, err := procfs.ParseStat(b); err == nil && st.StartTime == t.Start {
				return t.TID, nil
			}
		}
	}
	return 0, refuse(unix.ESRCH, "no process with pid "+strconv.Itoa(int(pid))+" in the caller's pid namespace")
}

// view maps a host pid to the pid the caller sees (0: not in its namespace).
func (c *caller) view(pid int32) int32 {
	if !c.foreign || pid == 0 {
		return pid
	}
	nspid, err := peer.NSpid(pid)
	if err != nil || len(nspid) < 2 {
		return 0
	}
	var st syscall.Stat_t
	if syscall.Stat("/proc/"+strconv.Itoa(int(pid))+"/ns/pid", &st) != nil || st.Dev != c.nsDev || st.Ino != c.nsIno {
		return 0
	}
	return nspid[len(nspid)-1]
}

// viewTask rewrites a task's pids for the caller.
func (c *caller) viewTask(t Task) Task {
	if c.foreign {
		t.PID, t.TGID, t.PPID = c.view(t.PID), c.view(t.TGID), c.view(t.PPID)
	}
	return t
}

type handlerFunc func(r *http.Request, c *caller) (any, error)

func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _ := r.Context().Value(connKey{}).(net.Conn)
		if lc, ok := conn.(*limitConn); ok {
			conn = lc.Conn
		}
		uc, ok := conn.(*net.UnixConn)
		if !ok {
			writeErr(w, refuse(unix.EPERM, "not a unix socket connection"))
			return
		}
		p, err := peer.FromConn(uc)
		if err != nil {
			writeErr(w, refuse(unix.EPERM, err.Error()))
			return
		}
		defer p.Close()
		c := &caller{Peer: p}
		if c.capable, err = p.CanControlAudit(); err != nil {
			writeErr(w, refuse(unix.ESRCH, "the caller exited: "+err.Error()))
			return
		}
		if c.nsDev, c.nsIno, err = p.PidNS(); err != nil {
			writeErr(w, refuse(unix.ESRCH, "the caller exited: "+err.Error()))
			return
		}
		c.foreign = c.nsDev != s.pidns[0] || c.nsIno != s.pidns[1]
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		out, err := h(r, c)
		if err != nil {
			s.log.Debug("api: refused", "pid", p.PID, "uid", p.UID, "path", r.URL.Path, "err", err)
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
		ee = refuse(unix.EIO, err.Error())
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
	var out Task
	err := s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		target, err := c.hostPID(e, pid)
		if err != nil {
			// Not in the caller's namespace: the engine still refuses
			// (ESRCH) and logs the attempt, against pid 0, which no task
			// has; the caller's number could name an unrelated host task.
			target = 0
		}
		err = f(e, engine.SetContid{Time: s.cfg.Now().UnixNano(), Caller: engine.TaskRef{PID: me.TGID, Start: me.Start},
			CallerCap: c.capable, Target: target})
		if err != nil {
			return err
		}
		t, _ := e.Task(target)
		out = c.viewTask(taskOf(t))
		return nil
	})
	return out, err
}

// visible reports whether a caller may see a chain: a contained caller
// sees only its own container and those nested in it (SPEC §8: no reading
// other containers through contid); an uncontained one sees all, as /proc
// shows it all processes.
func visible(callerChain, chain contid.Chain) bool {
	return len(callerChain) == 0 || chain.Contains(callerChain[0])
}

func (s *Server) task(r *http.Request, c *caller) (any, error) {
	pid, err := strconv.ParseInt(r.PathValue("pid"), 10, 32)
	if err != nil || pid <= 0 {
		return nil, refuse(unix.EINVAL, "pid must be a positive number")
	}
	var out Task
	err = s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		host, err := c.hostPID(e, int32(pid))
		if err != nil {
			return err
		}
		t, ok := e.Task(host)
		if !ok || !visible(me.Chain, t.Chain) {
			return refuse(unix.ESRCH, "no process with pid "+strconv.Itoa(int(pid)))
		}
		out = c.viewTask(taskOf(t))
		if s.cfg.KernelContid != nil {
			if id, ok, err := s.cfg.KernelContid(host); err == nil && ok {
				v := uint64(id)
				out.KernelContid = &v
			}
		}
		return nil
	})
	return out, err
}

func (s *Server) tasks(r *http.Request, c *caller) (any, error) {
	out := []Task{}
	err := s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		for _, t := range e.Tasks() {
			if visible(me.Chain, t.Chain) {
				out = append(out, c.viewTask(taskOf(t)))
			}
		}
		return nil
	})
	return out, err
}

func (s *Server) containers(r *http.Request, c *caller) (any, error) {
	out := []Container{}
	err := s.core.Do(r.Context(), func(e *engine.Engine) error {
		me, err := who(e, c)
		if err != nil {
			return err
		}
		for _, ci := range e.Containers() {
			if !visible(me.Chain, ci.Chain) {
				continue
			}
			co := Container{Contid: uint64(ci.Chain[0]), Chain: ids(ci.Chain), Name: ci.Name, OwnerPID: ci.Owner.PID,
				OwnerStart: ci.Owner.Start, Tasks: ci.Tasks, Children: ci.Children, Netns: []string{}}
			for _, n := range ci.Netns {
				co.Netns = append(co.Netns, n.String())
			}
			out = append(out, co)
		}
		return nil
	})
	return out, err
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

// limitListener bounds concurrent connections, so a local flood cannot
// exhaust the daemon's file descriptors.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, sem: l.sem}, nil
}

type limitConn struct {
	net.Conn
	sem  chan struct{}
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { <-c.sem })
	return c.Conn.Close()
}
