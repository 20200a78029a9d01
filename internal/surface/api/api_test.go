package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/core/engine"
)

// fakeCore serialises calls on an engine seeded with this test process
// (the caller) and two children of it.
type fakeCore struct {
	mu sync.Mutex
	e  *engine.Engine
}

func (c *fakeCore) Do(ctx context.Context, f func(e *engine.Engine) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return f(c.e)
}

const child1, child2 = 2000001, 2000002 // not real pids: the engine decides

func newTestServer(t *testing.T) (*Client, *fakeCore, string) {
	t.Helper()
	return newTestServerWith(t, func(*Config) {})
}

func newTestServerWith(t *testing.T, opt func(*Config)) (*Client, *fakeCore, string) {
	t.Helper()
	e := engine.New(engine.Config{})
	me, parent := int32(os.Getpid()), int32(os.Getppid())
	for _, s := range []engine.SeedTask{
		{PID: parent, TGID: parent, Start: 1},
		{PID: me, TGID: me, PPID: parent, Start: 2},
	} {
		if err := e.SeedTask(s); err != nil {
			t.Fatal(err)
		}
	}
	e.Fork(engine.Fork{Time: 3, Parent: me, Child: child1, ChildTGID: child1, Start: 3})
	e.Fork(engine.Fork{Time: 4, Parent: me, Child: child2, ChildTGID: child2, Start: 4})
	core := &fakeCore{e: e}
	sock := filepath.Join(t.TempDir(), "contid.sock")
	cfg := Config{Path: sock, Now: func() time.Time { return time.Unix(1795687200, 0) }}
	opt(&cfg)
	srv, err := Listen(cfg, core, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return NewClient(sock), core, sock
}

func TestSetAndQuery(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test checks CAP_AUDIT_CONTROL from a real peer: run it as root (CI does)")
	}
	cl, _, _ := newTestServer(t)
	ctx := context.Background()
	task, err := cl.SetContid(ctx, SetRequest{PID: child1, Contid: "77", Name: "web"})
	if err != nil || task.Contid == nil || *task.Contid != 77 {
		t.Fatalf("set: %+v, %v", task, err)
	}
	_, err = cl.SetContid(ctx, SetRequest{PID: child1, Contid: "78"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Errno != "EEXIST" || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("set again: %v", err)
	}
	if _, err := cl.SetContid(ctx, SetRequest{PID: int32(os.Getpid()), Contid: "5"}); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("self (with children): %v", err)
	}
	if _, err := cl.SetContid(ctx, SetRequest{PID: 99999999, Contid: "5"}); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("missing target: %v", err)
	}
	got, err := cl.Task(ctx, child1)
	if err != nil || len(got.Chain) != 1 || got.Chain[0] != 77 {
		t.Fatalf("task: %+v, %v", got, err)
	}
	cs, err := cl.Containers(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "web" || cs[0].OwnerPID != int32(os.Getpid()) {
		t.Fatalf("containers: %+v, %v", cs, err)
	}
}

// TestHostileRequests: malformed, oversized and foreign requests are
// refused with their errno and change nothing.
func TestHostileRequests(t *testing.T) {
	_, core, sock := newTestServer(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	tests := []struct {
		method, path, body string
		status             int
		errno              string
	}{
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"5"`, 400, "EINVAL"},
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"5","caller":1}`, 400, "EINVAL"},
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"5"} {"pid":2000002,"contid":"6"}`, 400, "EINVAL"},
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"` + strings.Repeat("9", 8192) + `"}`, 413, "E2BIG"},
		{"POST", "/v1/contid", `{"pid":"2000001","contid":"5"}`, 400, "EINVAL"},
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"5","name":"` + strings.Repeat("n", 300) + `"}`, 400, "EINVAL"},
		{"POST", "/v1/contid", "\x00\x01\x02", 400, "EINVAL"},
		{"POST", "/v1/contid", `{"pid":2000001,"contid":"18446744073709551615"}`, 400, "EINVAL"},
		{"GET", "/v1/tasks/-4", "", 400, "EINVAL"},
		{"GET", "/v1/tasks/abc", "", 400, "EINVAL"},
		{"GET", "/v1/tasks/31999", "", 404, "ESRCH"},
		{"DELETE", "/v1/contid", "", 405, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://contid"+tt.path, strings.NewReader(tt.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || tt.errno != "" && !strings.Contains(string(b), `"errno":"`+tt.errno+`"`) {
			t.Errorf("%s %s %.40q: %d %s; want %d %s", tt.method, tt.path, tt.body, resp.StatusCode, b, tt.status, tt.errno)
		}
	}
	core.mu.Lock()
	defer core.mu.Unlock()
	if len(core.e.Containers()) != 0 {
		t.Fatal("a refused request created a container")
	}
}

func TestStaleAndLiveSocket(t *testing.T) {
	_, _, sock := newTestServer(t)
	if _, err := Listen(Config{Path: sock}, &fakeCore{}, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second daemon on a live socket: %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(Config{Path: file}, &fakeCore{}, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("replaced a regular file")
	}
}
