package netpkt

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkUDPVeth measures the per-packet cost of watching namespaces:
// UDP datagrams from one namespace to another over a veth pair, with an
// audit packet rule in each that the datagrams do not match, side by side
// unwatched ("off") and watched ("on"). A send includes the receiving
// namespace's hooks, which run in the sender's softirq. Compare ns/op.
func BenchmarkUDPVeth(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root")
	}
	tag := fmt.Sprint(os.Getpid())
	an, bn := "contid-pkbench-a-"+tag, "contid-pkbench-b-"+tag
	rule := "iptables -I INPUT -p icmp --icmp-type echo-request -j AUDIT --type accept"
	fa := benchNetns(b, an, rule)
	fb := benchNetns(b, bn, rule)
	benchSh(b, "ip -n "+an+" link add pkbv0 type veth peer name pkbv1 netns "+bn)
	benchSh(b, "ip -n "+an+" addr add 10.252.0.1/30 dev pkbv0 && ip -n "+an+" link set pkbv0 up")
	benchSh(b, "ip -n "+bn+" addr add 10.252.0.2/30 dev pkbv1 && ip -n "+bn+" link set pkbv1 up")

	// The receiver exists (no port unreachable) but is not read: datagrams
	// past its buffer are dropped after the hooks.
	rcv := inNetns(b, fb, func() (any, error) { return net.ListenPacket("udp4", "10.252.0.2:9999") }).(net.PacketConn)
	defer rcv.Close()
	snd := inNetns(b, fa, func() (any, error) { return net.Dial("udp4", "10.252.0.2:9999") }).(net.Conn)
	defer snd.Close()
	payload := make([]byte, 64)
	send := func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := snd.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("off", send)
	p, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, f := range []*os.File{fa, fb} {
		w, err := p.Watch(f)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
	}
	b.Run("on", send)
	// The split: the netfilter programs alone, without the kernel-wide
	// kmem_cache_free and kfree_skb programs.
	p.detachGlobal()
	b.Run("nf-only", send)
	if err := p.attachGlobal(); err != nil {
		b.Fatal(err)
	}
	b.Run("on-again", send)
}

func inNetns(b *testing.B, f *os.File, fn func() (any, error)) any {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		b.Fatal(err)
	}
	defer self.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		b.Fatal(err)
	}
	v, err := fn()
	if err2 := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err2 != nil {
		panic(err2) // the thread is in the wrong namespace: stop here
	}
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func benchNetns(b *testing.B, name, rule string) *os.File {
	benchSh(b, "ip netns add "+name)
	b.Cleanup(func() { benchSh(b, "ip netns del "+name) })
	benchSh(b, "ip -n "+name+" link set lo up")
	benchSh(b, "ip netns exec "+name+" "+rule)
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

func benchSh(b *testing.B, cmd string) {
	if out, err := execSh(cmd); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}
