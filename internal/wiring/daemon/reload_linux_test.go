package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/config"
	"github.com/contid/contid/internal/surface/api"
)

// syncBuffer is a log sink for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReloadWhileServing runs the daemon in this process and reloads it
// with SIGHUP, changing the host log's flush policy and limits each time,
// while clients read its status: under -race this checks that the core's
// configuration and log writer are not shared unsafely with the API
// goroutines. Each reload must be applied (logged) and the log renamed
// away before each must be started anew. Root, as in CI (eBPF, bpffs).
func TestReloadWhileServing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the daemon needs root (eBPF, bpffs): run as root, as CI does")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "contid.toml")
	write := func(flush string, maxLog int) {
		t.Helper()
		if err := os.WriteFile(cfgPath, fmt.Appendf(nil, "[log]\nflush = %q\nmax_log_file = %d\n", flush, maxLog), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("incremental_async", 8)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogDir, cfg.Socket = filepath.Join(dir, "log"), filepath.Join(dir, "contid.sock")
	cfg.PinDir = fmt.Sprintf("/sys/fs/bpf/contid-daemon-test-%d", os.Getpid())
	cfg.Audit.Mode = "off"
	t.Cleanup(func() { os.RemoveAll(cfg.PinDir) })
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, cfgPath, log, Options{Ready: ready}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v\n%s", err, out.String())
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cl := api.NewClient(cfg.Socket)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := cl.Status(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	host := filepath.Join(cfg.LogDir, "audit.log")
	for i, flush := range []string{"data", "none", "sync", "incremental", "incremental_async", "data"} {
		if err := os.Rename(host, fmt.Sprintf("%s-%d", host, i)); err != nil {
			t.Fatal(err)
		}
		write(flush, i+1)
		n := strings.Count(out.String(), "reloaded configuration")
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		for strings.Count(out.String(), "reloaded configuration") == n {
			select {
			case err := <-done:
				t.Fatalf("daemon stopped: %v\n%s", err, out.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
		if !strings.Contains(out.String(), "flush="+flush) {
			t.Fatalf("reload %d did not apply flush=%s:\n%s", i, flush, out.String())
		}
		if _, err := os.Stat(host); err != nil {
			t.Fatalf("the renamed log was not started anew: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", out.String())
	}
}
