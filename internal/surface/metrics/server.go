package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// ServerConfig configures a Server. Zero values mean the defaults.
type ServerConfig struct {
	Network string // "tcp" or "unix"
	Address string // host:port, or an absolute socket path
	// Mode of a unix socket; default 0600: only root may read the
	// counters, which reveal the host's activity.
	Mode os.FileMode
	// MaxConns bounds concurrent connections (default 4): one scraper
	// needs one; a local flood waits in the kernel's backlog.
	MaxConns int
	// ReadHeaderTimeout (default 5 s) closes a connection that does not
	// send its request line and headers in time (slowloris); ReadTimeout
	// (default 10 s) bounds the whole request, WriteTimeout (default 10 s)
	// the response, IdleTimeout (default 30 s) a kept-alive connection.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers (default 4 KiB; larger gets
	// 431). A scrape sends a few hundred bytes.
	MaxHeaderBytes int

	connState func(net.Conn, http.ConnState) // tests
}

// Server serves GET /metrics and nothing else.
type Server struct {
	http *http.Server
	ln   net.Listener
	path string // unix socket to remove at Shutdown
}

// Listen binds the address. A stale unix socket file is replaced; one a
// live process answers on is an error.
func Listen(cfg ServerConfig, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 5*time.Second)
	def(&cfg.ReadTimeout, 10*time.Second)
	def(&cfg.WriteTimeout, 10*time.Second)
	def(&cfg.IdleTimeout, 30*time.Second)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 4 << 10
	}
	if cfg.Mode == 0 {
		cfg.Mode = 0o600
	}
	s := &Server{}
	var ln net.Listener
	var err error
	switch cfg.Network {
	case "tcp":
		ln, err = net.Listen("tcp", cfg.Address)
	case "unix":
		ln, err = listenUnix(cfg.Address, cfg.Mode)
		s.path = cfg.Address
	default:
		err = fmt.Errorf("network %q must be tcp or unix", cfg.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: listen: %w", err)
	}
	s.ln = netutil.LimitListener(ln, cfg.MaxConns)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: cfg.MaxConns,
	}))
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnState:         cfg.connState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket path %q must be absolute", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another process is listening", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		os.Remove(path)
	}
	// Until the chmod the umask decides (the unit sets UMask=0077); the
	// umask is not changed here because it is the whole process's.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Addr is the bound address (for a tcp port 0, the port chosen).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers scrapes until Shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting, lets scrapes finish, and removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if s.path != "" {
		os.Remove(s.path)
	}
	return err
}
