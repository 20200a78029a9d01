package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMain runs the dial role for TestUnixSocketPermissions.
func TestMain(m *testing.M) {
	if path := os.Getenv("CONTID_METRICS_DIAL"); path != "" {
		c, err := net.Dial("unix", path)
		if errors.Is(err, syscall.EACCES) {
			os.Exit(13)
		}
		if err != nil {
			os.Exit(1)
		}
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func serve(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Network == "" {
		cfg.Network, cfg.Address = "tcp", "127.0.0.1:0"
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(fullSnapshot))
	s, err := Listen(cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return s
}

func url(s *Server, path string) string { return "http://" + s.Addr().String() + path }

// TestOnlyMetrics: the server answers GET (and HEAD) /metrics and refuses
// everything else.
func TestOnlyMetrics(t *testing.T) {
	s := serve(t, ServerConfig{})
	resp, err := http.Get(url(s, "/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `contid_lost_total{kind="kernel"} 1026`) {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"HEAD", "/metrics", 200},
		{"POST", "/metrics", 405},
		{"PUT", "/metrics", 405},
		{"DELETE", "/metrics", 405},
		{"GET", "/", 404},
		{"GET", "/metrics/", 404},
		{"GET", "/debug/pprof/", 404},
		{"GET", "/v1/status", 404},
	} {
		req, _ := http.NewRequest(c.method, url(s, c.path), strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// TestHugeHeaders: a request with 64 KiB of headers (under net/http's own
// 1 MiB default, over the server's 4 KiB) gets 431 and the
// server keeps serving.
func TestHugeHeaders(t *testing.T) {
	s := serve(t, ServerConfig{})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		// The server stops reading early; write errors are expected.
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ")
		io.WriteString(c, strings.Repeat("a", 64<<10))
		io.WriteString(c, "\r\n\r\n")
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 431 ") {
		t.Fatalf("status line %q (%v), want 431", line, err)
	}
	if resp, err := http.Get(url(s, "/metrics")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the attack: %v %v", resp, err)
	}
}

// TestSlowloris: connections that never finish their headers are closed
// by the server, never hold more than MaxConns connections at once, and
// a scrape queued behind them is answered.
func TestSlowloris(t *testing.T) {
	var mu sync.Mutex
	active, peak := 0, 0
	s := serve(t, ServerConfig{
		MaxConns:          2,
		ReadHeaderTimeout: 100 * time.Millisecond,
		connState: func(_ net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			switch st {
			case http.StateNew:
				active++
				peak = max(peak, active)
			case http.StateClosed, http.StateHijacked:
				active--
			}
		},
	})
	const attackers = 6
	var wg sync.WaitGroup
	closed := make(chan error, attackers)
	for range attackers {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
		wg.Add(1)
		go func() {
			// Trickle a header byte at a time; the server's header
			// deadline is fixed at the first byte, so this gains nothing.
			defer wg.Done()
			for {
				if _, err := io.WriteString(c, "X"); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		go func() {
			// Ends when the server closes the connection (a guard of a
			// minute against a hang, not a measure of speed).
			c.SetReadDeadline(time.Now().Add(time.Minute))
			_, err := io.ReadAll(c)
			closed <- err
		}()
	}
	resp, err := http.Get(url(s, "/metrics"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape behind the attack: %v %v", resp, err)
	}
	resp.Body.Close()
	for range attackers {
		if err := <-closed; err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("attacker connection not closed by the server: %v", err)
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Fatalf("peak concurrent connections %d, want the limit 2", peak)
	}
}

// TestUnixSocketPermissions: the socket is 0600, so an unprivileged local
// user cannot read the counters; a stale socket file is replaced and a
// live one refused.
func TestUnixSocketPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (runs the attacker as uid 65534): run as root, as CI does")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "metrics.sock")
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	s := serve(t, ServerConfig{Network: "unix", Address: path})
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := Listen(ServerConfig{Network: "unix", Address: path}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a second server took a live socket")
	}
	self, _ := os.Executable()
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", self)
	cmd.Env = append(os.Environ(), "CONTID_METRICS_DIAL="+path)
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 13 {
		t.Fatalf("uid 65534 connecting: %v, want EACCES (exit 13)", err)
	}
	// Root still scrapes.
	cl := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := cl.Get("http://contid/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("root scrape: %v %v", resp, err)
	}
	resp.Body.Close()
	_ = s
}
