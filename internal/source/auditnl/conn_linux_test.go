package auditnl

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/testing/testwait"
)

// TestConnRecv: a conn takes the kernel's datagrams (a read that waits
// for one wakes when it comes), reports a datagram another process sent it
// (which needs CAP_NET_ADMIN: root in a container could) as errForeign
// rather than as the kernel's, and a waiting read ends at its deadline.
func TestConnRecv(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (AUDIT_GET, sending to another netlink socket)")
	}
	c, _, _, err := dial(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	buf := make([]byte, 1<<16)

	// Nothing waits: no wait, no datagram.
	if _, err := c.recv(buf, false); err != unix.EAGAIN {
		t.Fatalf("recv without wait on an empty socket: %v, want EAGAIN", err)
	}
	// The kernel's answer to AUDIT_GET, read by a waiting recv.
	got := make(chan error, 1)
	go func() {
		n, err := c.recv(buf, true)
		if err == nil && decodeHeader(buf[:n]).Type != unix.AUDIT_GET && decodeHeader(buf[:n]).Type != unix.NLMSG_ERROR {
			err = errors.New("not an answer to AUDIT_GET")
		}
		got <- err
	}()
	testwait.Parked(t, "auditnl.(*conn).await")
	if err := c.send(appendMessage(nil, Header{Type: unix.AUDIT_GET, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: 1}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Receive(t, "the kernel's answer", got); err != nil {
		t.Fatalf("recv of the kernel's answer: %v", err)
	}
	for {
		if _, err := c.recv(buf, false); err == unix.EAGAIN {
			break // the rest of the answer
		}
	}

	// A forged record from another socket.
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(forger)
	forged := appendMessage(nil, Header{Type: unix.AUDIT_USER}, []byte("audit(1.000:1): forged\x00"))
	if err := unix.Sendto(forger, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: sa.(*unix.SockaddrNetlink).Pid}); err != nil {
		t.Fatalf("sending to the conn: %v", err)
	}
	if n, err := c.recv(buf, true); !errors.Is(err, errForeign) || n != len(forged) {
		t.Fatalf("recv of a forged datagram: %d bytes, %v; want %d, errForeign", n, err, len(forged))
	}

	// A waiting read ends at its deadline.
	go func() { _, err := c.recv(buf, true); got <- err }()
	testwait.Parked(t, "auditnl.(*conn).await")
	c.f.SetReadDeadline(time.Now())
	if err := testwait.Receive(t, "the end of the read at its deadline", got); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("recv past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}
