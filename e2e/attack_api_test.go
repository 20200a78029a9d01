package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/procfs"
	"github.com/contid/contid/internal/surface/api"
)

// Roles of the test binary run as other users by the tests below. init
// runs before TestMain, whose own roles pass through.
func init() {
	switch os.Getenv("CONTID_E2E_ROLE") {
	case "attacker":
		attackerRole()
	case "helper":
		helperRole()
	case "hold":
		holdRole()
	default:
		return
	}
	os.Exit(0)
}

// rawCall sends one HTTP request on c and reads the answer.
func rawCall(c net.Conn, br *bufio.Reader, method, path, body string) (int, string, error) {
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: contid\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	if _, err := io.WriteString(c, req); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// attackerRole connects, hands the connection to a helper child, and
// execs a setuid-root program that blocks (su at its password prompt).
func attackerRole() {
	c, err := net.Dial("unix", os.Getenv("SOCK"))
	if err != nil {
		fmt.Println("dial", err)
		return
	}
	if os.Getenv("WARM") == "1" {
		// Accepted and identified before the exec.
		code, body, err := rawCall(c, bufio.NewReader(c), "GET", "/v1/status", "")
		fmt.Println("warm", code, err, len(body) > 0)
	}
	f, _ := c.(*net.UnixConn).File()
	self, _ := os.Executable()
	h := exec.Command(self)
	h.Env = append(os.Environ(), "CONTID_E2E_ROLE=helper")
	h.Stdin, h.Stdout, h.Stderr = os.Stdin, os.Stdout, os.Stderr
	h.ExtraFiles = []*os.File{f}
	if err := h.Start(); err != nil {
		fmt.Println("helper", err)
		return
	}
	err = syscall.Exec(os.Getenv("SUID"), []string{"suid-sleep", "1000"}, os.Environ())
	fmt.Println("exec", err)
}

// helperRole keeps the attacker's connection and, once the attacker runs
// the setuid program, asks for capcontid for itself and a contid for its
// child; after the setuid program has exited, it asks again on a new
// connection. Every answer is printed, one line each.
func helperRole() {
	c, err := net.FileConn(os.NewFile(3, "conn"))
	if err != nil {
		fmt.Println("fileconn", err)
		return
	}
	br := bufio.NewReader(c)
	parent := os.Getppid()
	for { // progress: the exec has happened
		euid, comm := parentState(parent)
		if comm == "suid-sleep" {
			if euid != "0" {
				fmt.Println("parent-not-root", euid)
				return
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("parent-euid-0")
	child := exec.Command("sleep", "1000")
	child.Start()
	defer child.Process.Kill()
	t := child.Process.Pid
	for _, rq := range []struct{ path, body string }{
		{"/v1/capcontid", fmt.Sprintf(`{"pid":%d,"value":"1"}`, os.Getpid())},
		{"/v1/contid", fmt.Sprintf(`{"pid":%d,"contid":"4242"}`, t)},
	} {
		code, body, err := rawCall(c, br, "POST", rq.path, rq.body)
		fmt.Printf("old-conn %s %d %v %s\n", rq.path, code, err, body)
	}
	fmt.Println("waiting")
	bufio.NewReader(os.Stdin).ReadString('\n') // the test killed the setuid program
	code, body, err := rawCall(c, br, "POST", "/v1/contid", fmt.Sprintf(`{"pid":%d,"contid":"4243"}`, t))
	fmt.Printf("old-conn-after %d %v %s\n", code, err, body)
	n, err := net.Dial("unix", os.Getenv("SOCK"))
	if err != nil {
		fmt.Println("dial", err)
		return
	}
	nbr := bufio.NewReader(n)
	for _, rq := range []struct{ path, body string }{
		{"/v1/contid", fmt.Sprintf(`{"pid":%d,"contid":"4243"}`, t)},
		{"/v1/capcontid", fmt.Sprintf(`{"pid":%d,"value":"1"}`, t)},
	} {
		code, body, err := rawCall(n, nbr, "POST", rq.path, rq.body)
		fmt.Printf("new-conn %s %d %v %s\n", rq.path, code, err, body)
	}
	fmt.Println("done")
}

// parentState reads a process's name, then its effective uid.
func parentState(pid int) (euid, comm string) {
	comm, _ = procfs.Host.Comm(int32(pid))
	st, err := procfs.Host.Status(int32(pid))
	if err != nil {
		return "", comm
	}
	return strconv.FormatUint(uint64(st.UID[1]), 10), comm
}

// sharedCopy copies the test binary where other users may run it.
func sharedCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "contid-e2e-shared-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "e2e.test")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func asUser(uid uint32) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
}

// TestAttackSetuidWindow: an unprivileged user connects, forks a helper
// that keeps the connection, then execs a setuid-root program that waits.
// The helper's requests are not judged by the setuid program's
// capabilities: no capcontid, no registration, neither on the old
// connection nor, after the program exits, on a new one.
func TestAttackSetuidWindow(t *testing.T) {
	d := startDaemon(t, "")
	bin := sharedCopy(t)
	suid := filepath.Join(filepath.Dir(bin), "suid-sleep")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(sleep)
	if err := os.WriteFile(suid, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil { // root's, setuid
		t.Fatal(err)
	}
	for _, warm := range []string{"1", "0"} {
		t.Run("warm="+warm, func(t *testing.T) {
			a := exec.Command(bin)
			a.Env = append(os.Environ(), "CONTID_E2E_ROLE=attacker", "SOCK="+d.socket, "SUID="+suid, "WARM="+warm)
			a.SysProcAttr = asUser(65534)
			out, w, _ := os.Pipe()
			in, win, _ := os.Pipe()
			a.Stdout, a.Stderr, a.Stdin = w, w, in
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			in.Close()
			defer win.Close()
			defer a.Process.Kill()
			lines := bufio.NewScanner(out)
			var got []string
			next := func(until string) {
				for lines.Scan() {
					got = append(got, lines.Text())
					if strings.HasPrefix(lines.Text(), until) {
						return
					}
				}
				t.Fatalf("no %q from the attacker; output:\n%s", until, strings.Join(got, "\n"))
			}
			next("parent-")
			next("waiting")
			if !slices.Contains(got, "parent-euid-0") {
				t.Fatalf("the setuid program did not run as root (a nosuid filesystem?):\n%s", strings.Join(got, "\n"))
			}
			// The setuid program exits; the helper goes on.
			a.Process.Kill()
			a.Wait()
			win.Write([]byte("go\n"))
			next("done")
			t.Logf("attacker:\n%s", strings.Join(got, "\n"))
			for _, l := range got {
				if !strings.HasPrefix(l, "old-conn") && !strings.HasPrefix(l, "new-conn") {
					continue
				}
				// Refused (EPERM), or the connection closed after the
				// refusal of an exec'd caller.
				if strings.Contains(l, " 200 ") || !strings.Contains(l, "EPERM") && !strings.Contains(l, "broken pipe") &&
					!strings.Contains(l, "EOF") && !strings.Contains(l, "reset") {
					t.Errorf("not refused: %s", l)
				}
			}
		})
	}
	for _, r := range d.logRecords() {
		if res, _ := r.Get("res"); res == "success" && (r.Type == records.SetCapcontid || r.Type == records.ContainerOp) {
			t.Errorf("the attack changed something: %s %v", r.Type, r.Fields)
		}
	}
	d.waitRecord(records.SetCapcontid, "capcontid=1", "res=failed")
}

// holdRole opens N connections as its user, asks for /v1/status on each
// and prints how many were admitted; then it keeps the admitted ones busy
// (a request on each in turn, as a keep-alive attacker would) until stdin
// closes.
func holdRole() {
	n, _ := strconv.Atoi(os.Getenv("N"))
	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	var hs []held
	refused := 0
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", os.Getenv("SOCK"))
		if err != nil {
			refused++
			continue
		}
		br := bufio.NewReader(c)
		code, body, err := rawCall(c, br, "GET", "/v1/status", "")
		switch {
		case err == nil && code == 503 && strings.Contains(body, `"errno":"EAGAIN"`):
			refused++
			c.Close()
		case err == nil && code == 200:
			hs = append(hs, held{c, br})
		default:
			fmt.Println("error", err)
			refused++
		}
	}
	fmt.Printf("held %d refused %d\n", len(hs), refused)
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	for {
		for _, h := range hs {
			rawCall(h.c, h.br, "GET", "/v1/status", "")
		}
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestAttackConnectionSlots: unprivileged users hold every connection the
// daemon allows them (8 per uid, 48 in all) and ask for more; each further
// connection is refused at once with EAGAIN, and root's registrations
// still succeed on the slots kept for privileged callers.
func TestAttackConnectionSlots(t *testing.T) {
	d := startDaemon(t, "")
	bin := sharedCopy(t)
	hold := func(uid uint32, n int) (held, refused int) {
		h := exec.Command(bin)
		h.Env = append(os.Environ(), "CONTID_E2E_ROLE=hold", "SOCK="+d.socket, "N="+strconv.Itoa(n))
		h.SysProcAttr = asUser(uid)
		stdin, _ := h.StdinPipe()
		out, _ := h.StdoutPipe()
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); h.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if _, err2 := fmt.Sscanf(line, "held %d refused %d", &held, &refused); err != nil || err2 != nil {
			t.Fatalf("holder uid %d: %q %v", uid, line, err)
		}
		return held, refused
	}
	// One user: 8 connections, the ninth and tenth refused at once.
	if held, refused := hold(65534, 10); held != 8 || refused != 2 {
		t.Fatalf("uid 65534 held %d, refused %d; want 8 and 2", held, refused)
	}
	// More users fill the unprivileged slots: 48 in all.
	total := 8
	for uid := uint32(60000); uid < 60005; uid++ {
		h, _ := hold(uid, 8)
		total += h
	}
	if total != 48 {
		t.Fatalf("unprivileged users hold %d connections, want 48", total)
	}
	if held, refused := hold(60100, 2); held != 0 || refused != 2 {
		t.Fatalf("a new uid got %d connections (refused %d) with the unprivileged slots taken", held, refused)
	}
	// Root still registers, through the CLI and the OCI-hook path alike.
	start := time.Now()
	_, errOut, code := d.sh(`sleep 30 & P=$!; "$C" set $P 901 && "$C" exec --contid 902 -- true; R=$?; kill $P; exit $R`)
	t.Logf("root's set and exec took %v with every unprivileged slot held", time.Since(start))
	if code != 0 {
		t.Fatalf("root's registration failed: exit %d: %s", code, errOut)
	}
	d.waitRecord(records.ContainerOp, "op=set", "contid=901", "res=success")
	d.waitRecord(records.ContainerOp, "op=set", "contid=902", "res=success")
	// The CLI of an unprivileged user says why.
	_, errOut, code = d.sh(`setpriv --reuid=65534 --regid=65534 --clear-groups "$C" status`)
	if code == 0 || !strings.Contains(errOut, "EAGAIN") {
		t.Fatalf("a ninth connection of uid 65534: exit %d, %q; want EAGAIN", code, errOut)
	}
}

// TestAPILimits: an idle connection is closed by the daemon, a body over
// 4 KiB is refused (E2BIG), and a name is kept up to 256 bytes and refused
// beyond.
func TestAPILimits(t *testing.T) {
	d := startDaemon(t, "")
	c, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if code, body, err := rawCall(c, br, "GET", "/v1/status", ""); err != nil || code != 200 {
		t.Fatalf("status: %d %v %s", code, err, body)
	}
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF { // the daemon closes the idle connection
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	t.Logf("idle connection closed after %v", time.Since(start))

	c2, _ := net.Dial("unix", d.socket)
	defer c2.Close()
	big := `{"pid":1,"contid":"` + strings.Repeat("9", 5000) + `"}`
	if code, body, _ := rawCall(c2, bufio.NewReader(c2), "POST", "/v1/contid", big); code != 413 || !strings.Contains(body, "E2BIG") {
		t.Fatalf("5 KB body: %d %s", code, body)
	}

	name := strings.Repeat("n", 256)
	out, errOut, code := d.sh(`sleep 30 & P=$!; "$C" exec --contid 950 --name "$N" -- sh -c '"$C" containers --json'; R=$?; "$C" exec --contid 951 --name "${N}x" -- true; echo "long=$?"; kill $P; exit $R`, "N="+name)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var cs []api.Container
	json.Unmarshal([]byte(out[:strings.LastIndex(out, "long=")]), &cs)
	if len(cs) != 1 || cs[0].Name != name {
		t.Fatalf("containers: %+v", cs)
	}
	if !strings.Contains(out, "long=125") || !strings.Contains(errOut, "EINVAL") {
		t.Fatalf("a 257-byte name: %s %s", out, errOut)
	}
}
