package procconn

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fuzzCorpusDir is FuzzDecode's committed seed corpus: the captured
// datagrams and synthetic ones.
const fuzzCorpusDir = "testdata/fuzz/FuzzDecode"

func kernelRelease(t *testing.T) string {
	t.Helper()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(uts.Release[:])
}

// TestCapture records datagrams of the running kernel into testdata (with
// -update only: the files are committed, and every capture differs in
// times, pids and sequence numbers). Run it with TestDecodeCaptured, which
// then writes their golden decodings:
//
//	go test -run 'TestCapture|TestDecodeCaptured' -update ./internal/source/procconn
func TestCapture(t *testing.T) {
	if !*update {
		return // an entry point, not a test: recaptures testdata with -update
	}
	c := open(t, Config{AllEvents: true})
	for _, dir := range []string{capturedDir, fuzzCorpusDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Acknowledgements: of a LISTEN (on the connection itself, already
	// listening: nothing changes), and of an invalid operation, sent from
	// a socket of its own that never listened, so that the kernel's count
	// of listeners stays right.
	const ack = 0x1234
	if err := c.send(mcastListen, 0, ack); err != nil {
		t.Fatal(err)
	}
	bad, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(bad, appendRequest(nil, 3, 0, ack+10), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	unix.Close(bad)

	// A shell that renames itself, changes ids and session, runs children,
	// and exits with 3.
	sh := exec.Command("sh", "-c", "echo procconn-cap > /proc/self/comm; "+
		"setpriv --reuid=65534 --regid=65534 --clear-groups true; setsid true; exit 3")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	sh.Wait()
	shPid := int32(sh.Process.Pid)

	// Threads.
	helper := threadsCmd(t)
	if err := helper.Run(); err != nil {
		t.Fatal(err)
	}
	helperPid := int32(helper.Process.Pid)

	// ptrace attach and detach.
	traced := exec.Command("sleep", "10")
	if err := traced.Start(); err != nil {
		t.Fatal(err)
	}
	tracedPid := int32(traced.Process.Pid)
	func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.PtraceAttach(int(tracedPid)); err != nil {
			t.Fatal(err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(int(tracedPid), &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := unix.PtraceDetach(int(tracedPid)); err != nil {
			t.Fatal(err)
		}
	}()
	traced.Process.Signal(syscall.SIGKILL)
	traced.Wait()

	// Everything is in the socket by now; take it raw.
	var dgrams [][]byte
	buf := make([]byte, recvBufLen)
	for {
		var n int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if rerr == unix.EAGAIN {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
		dgrams = append(dgrams, bytes.Clone(buf[:n]))
	}

	// Pick one datagram of each kind.
	family := map[int32]bool{shPid: true}
	picked := map[string][]byte{}
	pick := func(name string, b []byte) {
		if picked[name] == nil {
			picked[name] = b
		}
	}
	for _, b := range dgrams {
		msgs, err := decode(b, nil)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("a datagram of the kernel: %d messages, %v\n%x", len(msgs), err, b)
		}
		m := msgs[0]
		// process_pid of the events decode does not look into.
		pid := int32(ne.Uint32(b[nlmsgHdrLen+cnMsgLen+evHdrLen:]))
		switch m.what {
		case whatNone:
			switch m.ack {
			case ack + 1:
				pick("ack", b)
			case ack + 11:
				pick("ack-einval", b)
			}
		case whatFork:
			switch {
			case m.ev.TID == shPid:
				pick("fork", b)
			case family[m.ev.ParentTGID]:
				family[m.ev.TID] = true
			case m.ev.TGID == helperPid && m.ev.Thread:
				pick("fork-thread", b)
			}
		case whatExec:
			if m.ev.TID == shPid {
				pick("exec", b)
			}
		case whatExit:
			switch {
			case m.ev.TID == shPid:
				pick("exit-status-3", b)
			case family[m.ev.TID]:
				pick("exit", b)
			}
		case whatComm:
			if pid == shPid {
				pick("comm", b)
			}
		case whatUID, whatGID, whatSID:
			if family[pid] {
				pick(whatName(m.what), b)
			}
		case whatPtrace:
			if pid == tracedPid {
				if ne.Uint32(b[nlmsgHdrLen+cnMsgLen+evHdrLen+8:]) != 0 {
					pick("ptrace-attach", b)
				} else {
					pick("ptrace-detach", b)
				}
			}
		}
	}
	release := kernelRelease(t)
	for _, name := range []string{"ack", "ack-einval", "fork", "fork-thread", "exec", "exit", "exit-status-3",
		"comm", "uid", "gid", "sid", "ptrace-attach", "ptrace-detach"} {
		b := picked[name]
		if b == nil {
			t.Errorf("no %s datagram among %d", name, len(dgrams))
			continue
		}
		writeFile(t, filepath.Join(capturedDir, "linux-"+release+"-"+name+".bin"), b)
		writeCorpus(t, "captured-"+name, b)
	}

	// Synthetic seeds: what the kernel does not send (several messages in
	// one datagram, coredump) and near misses.
	fork := event(whatFork, 1, 7, 100, 10, 9, 11, 11)
	for name, b := range map[string][]byte{
		"two-messages":    cat(fork, event(whatExec, 1, 8, 101, 11, 11)),
		"noop-then-exit":  cat(nlMsg(nlmsgNoop, nil), event(whatExit, 0, 3, 102, 11, 11, 0, 17, 10, 10)),
		"coredump":        event(whatCoredump, 0, 4, 103, 11, 11, 10, 10),
		"fork-cut":        fork[:len(fork)-24],
		"other-connector": nlMsg(nlmsgDone, cnMsgID(4, 1, 0, 0, evLen, procEv(whatFork, 0, 0, 1, 1, 2, 2))),
		"cn-len-beyond":   nlMsg(nlmsgDone, cnMsgID(cnIdxProc, cnValProc, 0, 0, 200, procEv(whatExec, 0, 0, 2, 2))),
		"trailing-bytes":  cat(fork, []byte{0, 0, 0}),
	} {
		writeCorpus(t, "synthetic-"+name, b)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(b))
}

// writeCorpus writes a seed in the format of go test's fuzz corpus.
func writeCorpus(t *testing.T, name string, b []byte) {
	t.Helper()
	writeFile(t, filepath.Join(fuzzCorpusDir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b))
}
