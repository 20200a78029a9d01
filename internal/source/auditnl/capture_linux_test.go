package auditnl

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "recapture testdata/captured from the running kernel (root)")

// capturedDir holds datagrams received from a real kernel, one per file,
// named by what they are; decode tests replay them and FuzzDecode seeds
// from them.
const capturedDir = "testdata/captured"

// TestCaptureSeeds records real datagrams from the running kernel into
// testdata/captured. It runs with -update only: the files are committed,
// and their timestamps and serials differ on every capture.
func TestCaptureSeeds(t *testing.T) {
	if !*update {
		return // an entry point, not a test: recaptures testdata/captured with -update
	}
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)

	kernel := "linux-" + kernelRelease(t)
	save := func(name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(capturedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(capturedDir, kernel+"-"+name+".bin")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes\n%s", p, len(b), hex.Dump(b[:min(len(b), 96)]))
	}
	buf := make([]byte, recvBufLen)
	recvRaw := func(k *conn) []byte {
		t.Helper()
		k.f.SetReadDeadline(time.Now().Add(5 * time.Second))
		defer k.f.SetReadDeadline(time.Time{})
		n, err := k.recv(buf, true)
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		return bytes.Clone(buf[:n])
	}
	send := func(k *conn, typ uint16, flags uint16, seq uint32, payload []byte) {
		t.Helper()
		if err := k.send(appendMessage(nil, Header{Type: typ, Flags: flags, Seq: seq}, payload)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}

	req, _, _, err := dial(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer req.close()

	// AUDIT_GET: the reply and the ack, in whatever order they come.
	send(req, unix.AUDIT_GET, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 1, nil)
	for range 2 {
		b := recvRaw(req)
		if decodeHeader(b).Type == unix.AUDIT_GET {
			save("audit-get-reply", b)
		} else {
			save("ack-ok", b)
		}
	}
	// A refused AUDIT_SET: registering a pid that is not ours (EINVAL);
	// the error ack echoes the request.
	send(req, unix.AUDIT_SET, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 2, marshalStatus(Status{Mask: unix.AUDIT_STATUS_PID, PID: 1}))
	save("ack-einval", recvRaw(req))

	// Records, unicast (to the registered daemon) and multicast at once.
	lis, _, _, err := dial(1<<(unix.AUDIT_NLGRP_READLOG-1), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.close()
	c, err := Open(Config{Enable: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	audittest.Auditctl(t, "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "contid-test")
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendUser(2900, "op=capture contid=5 res=success"); err != nil {
		t.Fatal(err)
	}
	pid := []byte("pid=" + strconv.Itoa(cmd.Process.Pid) + " ")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The raw unicast datagrams: read c's record socket directly.
	got := map[string]bool{}
	names := map[uint16]string{1300: "syscall", 1309: "execve", 1302: "path", 1327: "proctitle", 1320: "eoe", 1307: "cwd", 2900: "user-2900"}
	c.recvMu.Lock()
	var serial uint64
	for len(got) < len(names) {
		if ctx.Err() != nil {
			t.Fatalf("captured only %v", got)
		}
		b := recvRaw(c.rec)
		h := decodeHeader(b)
		name, ok := names[h.Type]
		if !ok || got[name] {
			continue
		}
		st, _, err := ParseStamp(b[HeaderLen:])
		if err != nil {
			continue
		}
		if h.Type == 1300 {
			if !bytes.Contains(b, pid) {
				continue
			}
			serial = st.Serial
		} else if h.Type != 2900 && (serial == 0 || st.Serial != serial) {
			continue
		}
		got[name] = true
		save("unicast-"+name, b)
	}
	// Asking to become the daemon while c is registered: EEXIST for the
	// asker, an AUDIT_REPLACE probe (the asker's pid) for c.
	send(req, unix.AUDIT_SET, unix.NLM_F_REQUEST|unix.NLM_F_ACK, 3, marshalStatus(Status{Mask: unix.AUDIT_STATUS_PID, PID: uint32(os.Getpid())}))
	save("ack-eexist", recvRaw(req))
	for {
		if ctx.Err() != nil {
			t.Fatal("no AUDIT_REPLACE")
		}
		if b := recvRaw(c.rec); decodeHeader(b).Type == unix.AUDIT_REPLACE {
			save("unicast-replace", b)
			break
		}
	}
	c.recvMu.Unlock()
	for done := false; !done; {
		b := recvRaw(lis)
		h := decodeHeader(b)
		if h.Type == 1300 && bytes.Contains(b, pid) {
			save("multicast-syscall", b)
			done = true
		}
	}
}

func kernelRelease(t *testing.T) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	r := unix.ByteSliceToString(u.Release[:])
	if i := bytes.IndexAny([]byte(r), "-+"); i > 0 {
		r = r[:i]
	}
	return r
}
