package netpkt

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/contid/contid/internal/source/auditnl/audittest"
	"github.com/contid/contid/internal/source/procfs"
)

// netns creates a network namespace with loopback up and the given setup
// commands run inside it; it is deleted when the test ends.
func netns(t testing.TB, name string, setup ...string) *os.File {
	t.Helper()
	sh(t, "ip netns add "+name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip -n "+name+" link set lo up")
	for _, c := range setup {
		sh(t, "ip netns exec "+name+" "+c)
	}
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// veth links namespaces a and b with a veth pair: dev+"0" in a with
// address net.1/30, dev+"1" in b with net.2/30, both up.
func veth(t testing.TB, a, b, dev, net string) {
	t.Helper()
	sh(t, "ip -n "+a+" link add "+dev+"0 type veth peer name "+dev+"1 netns "+b)
	sh(t, "ip -n "+a+" addr add "+net+".1/30 dev "+dev+"0 && ip -n "+a+" link set "+dev+"0 up")
	sh(t, "ip -n "+b+" addr add "+net+".2/30 dev "+dev+"1 && ip -n "+b+" link set "+dev+"1 up")
}

// auditedVeth makes namespaces a and b (prefix+"a-PID", prefix+"b-PID"),
// each with an iptables AUDIT rule on echo requests arriving, linked by
// veth(t, a, b, dev, net); fa and fb are the namespaces open.
func auditedVeth(t testing.TB, prefix, dev, net string) (a, b string, fa, fb *os.File) {
	t.Helper()
	tag := fmt.Sprint(os.Getpid())
	a, b = prefix+"a-"+tag, prefix+"b-"+tag
	rule := "iptables -I INPUT -p icmp --icmp-type echo-request -j AUDIT --type accept"
	fa, fb = netns(t, a, rule), netns(t, b, rule)
	veth(t, a, b, dev, net)
	return a, b, fa, fb
}

func sh(t testing.TB, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

const (
	iptAudit = "iptables -I INPUT -i lo -p icmp --icmp-type echo-request -j AUDIT --type accept"
	nftAudit = `nft 'add table inet pk; add chain inet pk in { type filter hook input priority 0; }; add rule inet pk in iif lo icmp type echo-request meta mark set 0x2a log level audit'`
)

// nextPairs reads n pairs, failing when none comes for a while (an idle
// timeout per read, not a deadline on the whole).
func nextPairs(t *testing.T, ch <-chan Pair, n int) []Pair {
	t.Helper()
	var out []Pair
	for len(out) < n {
		select {
		case p := <-ch:
			out = append(out, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("no pair for 10 s after %d of %d: %+v", len(out), n, out)
		}
	}
	return out
}

// TestPairs: pings in three namespaces, each logged by an audit packet
// rule: records logged in a watched namespace (iptables AUDIT, nftables
// log level audit) are paired with exactly that namespace, the one logged
// in an unwatched namespace with none, and serials only grow.
func TestPairs(t *testing.T) {
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	tag := fmt.Sprint(os.Getpid())
	ns1 := netns(t, "contid-pk1-"+tag, iptAudit)
	ns2 := netns(t, "contid-pk2-"+tag, nftAudit)
	netns(t, "contid-pk3-"+tag, iptAudit) // not watched

	p, ch := watchPairs(t, ns1, ns2)
	audittest.Auditctl(t, "-e", "1")

	var last uint32
	for _, tc := range []struct {
		name  string
		watch bool
	}{{"contid-pk1-" + tag, true}, {"contid-pk2-" + tag, true}, {"contid-pk3-" + tag, false}} {
		id, err := procfs.ReadNSID("/run/netns/" + tc.name)
		if err != nil {
			t.Fatal(err)
		}
		sh(t, "ip netns exec "+tc.name+" busybox ping -q -c 3 -i 0.1 127.0.0.1 >/dev/null")
		for _, pr := range nextPairs(t, ch, 3) {
			if pr.Serial <= last {
				t.Errorf("%s: serial %d after %d", tc.name, pr.Serial, last)
			}
			last = pr.Serial
			switch {
			case tc.watch && (!pr.Known || pr.NetnsIno != id.Ino || (id.Unique != 0 && pr.NetnsID != id.Unique)):
				t.Errorf("%s (ino %d id %d): pair %+v", tc.name, id.Ino, id.Unique, pr)
			case !tc.watch && (pr.Known || pr.Why != WhyNoTraversal):
				t.Errorf("%s, not watched: pair %+v, want no namespace", tc.name, pr)
			}
		}
	}
	select {
	case pr := <-ch:
		t.Errorf("a pair more than the records logged: %+v", pr)
	default:
	}
	if o, f, err := p.Counters(); err != nil || o != 0 || f != 0 {
		t.Errorf("counters: overflow %d ring full %d (%v)", o, f, err)
	}
}

func TestSymbolRanges(t *testing.T) {
	f := t.TempDir() + "/kallsyms"
	os.WriteFile(f, []byte(strings.Join([]string{
		"ffffffff81000000 T _text",
		"ffffffff81ff9830 t __pfx_audit_tg_ebt",
		"ffffffff81ff9800 t audit_tg",
		"ffffffff81fb3430 T nft_do_chain",
		"ffffffff81fb3a00 T nft_do_chain_other",
		"ffffffffc0000000 t mod_fn [mod]",
	}, "\n")), 0o600)
	got, err := symbolRanges(f, []string{"audit_tg", "nft_do_chain"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{0xffffffff81ff9800, 0xffffffff81ff9830}, {0xffffffff81fb3430, 0xffffffff81fb3a00}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %x, want %x", got, want)
	}
	if _, err := symbolRanges(f, []string{"missing"}); err == nil {
		t.Error("a missing symbol gave no error")
	}
}

// TestPairsVeth: two namespaces joined by a veth pair, an AUDIT rule on
// echo requests in each, a ping each way: each record is paired with the
// namespace that received the request, never the sender's.
func TestPairsVeth(t *testing.T) {
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	a, b, fa, fb := auditedVeth(t, "contid-pk", "pkveth", "10.251.0")

	_, ch := watchPairs(t, fa, fb)
	audittest.Auditctl(t, "-e", "1")
	for _, tc := range []struct{ from, to, addr string }{{a, b, "10.251.0.2"}, {b, a, "10.251.0.1"}} {
		id, err := procfs.ReadNSID("/run/netns/" + tc.to)
		if err != nil {
			t.Fatal(err)
		}
		sh(t, "ip netns exec "+tc.from+" busybox ping -q -c 3 -i 0.1 "+tc.addr+" >/dev/null")
		for _, pr := range nextPairs(t, ch, 3) {
			if !pr.Known || pr.NetnsIno != id.Ino || (id.Unique != 0 && pr.NetnsID != id.Unique) {
				t.Errorf("ping %s → %s: pair %+v, want %s (ino %d id %d)", tc.from, tc.to, pr, tc.to, id.Ino, id.Unique)
			}
		}
	}
	select {
	case pr := <-ch:
		t.Errorf("a pair more than the records logged: %+v", pr)
	default:
	}
}

// fragScript sends, from one task pinned to CPU 0, a 3000-byte UDP
// datagram from namespace argv[1] to argv[2] (fragmented on the veth), then
// moves itself into namespace argv[3] and sends a small datagram on its
// loopback.
const fragScript = pinnedSetns + `
enter(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    s.sendto(b"x" * 3000, (sys.argv[2], 9999))
send_unwatched(sys.argv[3])
`

// TestStolenFragments: fragments that conntrack's defragmentation takes
// out of a watched namespace's hook traversal never reach the closing
// program; the record the same task then makes in an unwatched namespace
// must pair with no namespace, not with the watched one.
func TestStolenFragments(t *testing.T) {
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	tag := fmt.Sprint(os.Getpid())
	a, b, c := "contid-pkfa-"+tag, "contid-pkfb-"+tag, "contid-pkfc-"+tag
	fa := netns(t, a, "iptables -I INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT")
	netns(t, b)
	netns(t, c, "iptables -I INPUT -i lo -p udp --dport 9999 -j AUDIT --type accept")
	veth(t, b, a, "pkfv", "10.254.0")

	stolenThenUnwatched(t, fa, fragScript, "/run/netns/"+b, "10.254.0.2", "/run/netns/"+c)
}

// TestWatchRules: a watch runs the programs exactly at the hooks where the
// namespace has audit packet rules, and follows them at each Recheck:
// none, iptables AUDIT on INPUT (iptables-nft), nftables log level audit
// in an inet output chain and in a regular chain jumped to from
// forward, a legacy table, and back to none.
func TestWatchRules(t *testing.T) {
	audittest.RequireRoot(t)
	name := fmt.Sprint("contid-pkw-", os.Getpid())
	f := netns(t, name, "iptables -I OUTPUT -j ACCEPT")
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w, err := p.Watch(f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	in := "ip netns exec " + name + " "
	for _, step := range []struct{ cmd, want string }{
		{"true", ""},
		{"iptables -I INPUT -p icmp -j AUDIT --type accept", "ipv4/input"},
		{`nft 'add table inet pkw; add chain inet pkw out { type filter hook output priority 0; }; add rule inet pkw out log level audit'`,
			"ipv4/input,ipv4/output,ipv6/output"},
		{`nft 'add chain inet pkw fw { type filter hook forward priority 0; }; add chain inet pkw sub; add rule inet pkw fw jump sub; add rule inet pkw sub log level audit; flush chain inet pkw out'`,
			"ipv4/input,ipv4/forward,ipv4/output,ipv6/forward,ipv6/output"},
		{"nft delete table inet pkw && iptables -F INPUT", ""},
		{"iptables-legacy -t raw -I PREROUTING -j ACCEPT", "ipv4/prerouting,ipv4/input,ipv4/forward,ipv4/output,ipv4/postrouting"},
	} {
		sh(t, in+"sh -c "+shellQuote(step.cmd))
		if err := w.Recheck(); err != nil {
			t.Fatalf("after %s: %v", step.cmd, err)
		}
		if got := w.Hooks().String(); got != step.want {
			t.Errorf("after %s: hooks %q, want %q", step.cmd, got, step.want)
		}
	}
	if p.active != 1 || len(p.links) == 0 {
		t.Errorf("kernel-wide programs: %d active watches, %d links", p.active, len(p.links))
	}
	w.Close()
	if p.active != 0 || len(p.links) != 0 {
		t.Errorf("after Close: %d active watches, %d kernel-wide links", p.active, len(p.links))
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// TestWatchConcurrent: rechecks from several goroutines and a close in the
// middle (the daemon rechecks away from its own goroutine) leave the
// kernel-wide programs attached exactly while a watch has hooks.
func TestWatchConcurrent(t *testing.T) {
	audittest.RequireRoot(t)
	tag := fmt.Sprint(os.Getpid())
	f1 := netns(t, "contid-pkc1-"+tag, iptAudit)
	f2 := netns(t, "contid-pkc2-"+tag, nftAudit)
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var ws []*Watch
	for _, f := range []*os.File{f1, f2} {
		w, err := p.Watch(f)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	done := make(chan error)
	for i := 0; i < 4; i++ {
		go func() {
			var err error
			for j := 0; j < 5 && err == nil; j++ {
				if err = ws[(i+j)%2].Recheck(); errors.Is(err, ErrClosed) {
					err = nil
				}
			}
			done <- err
		}()
	}
	ws[0].Close()
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if got := ws[1].Hooks().String(); got != "ipv4/input,ipv6/input" {
		t.Errorf("hooks %q", got)
	}
	if err := ws[0].Recheck(); !errors.Is(err, ErrClosed) {
		t.Errorf("recheck after close: %v", err)
	}
	p.mu.Lock()
	a, l := p.active, len(p.links)
	p.mu.Unlock()
	if a != 1 || l == 0 {
		t.Errorf("%d active watches, %d kernel-wide links; want 1 and some", a, l)
	}
	ws[1].Close()
	if p.active != 0 || len(p.links) != 0 {
		t.Errorf("after both closed: %d active, %d links", p.active, len(p.links))
	}
}

// stealScript sends, from one task pinned to CPU 0, 20 first fragments
// through a raw socket on namespace argv[1]'s loopback (conntrack's
// defragmentation steals each at the output hook, in the task's own
// context), then moves itself into namespace argv[2] and sends a small
// datagram on its loopback.
const stealScript = pinnedSetns + `
import struct
enter(sys.argv[1])
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
lo = socket.inet_aton("127.0.0.1")
for i in range(20):
    body = b"\0" * 16
    # IPv4, more fragments follow, offset 0: held until the rest comes
    r.sendto(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x4000 + i, 0x2000, 64, 17, 0, lo, lo) + body, ("127.0.0.1", 0))
send_unwatched(sys.argv[2])
`

// TestStolenOutput: packets stolen at a watched namespace's output hook,
// in task context (here by defragmentation; NFQUEUE on OUTPUT leaves the
// same way), leave entries that no softirq end drops; the record the same
// task then makes, on the same CPU, in an unwatched namespace must pair
// with no namespace, not with the watched one. (The attack: root in a
// container steals its own packets, then logs one in a namespace it has
// just made, so that the record carries the container's contid.)
func TestStolenOutput(t *testing.T) {
	audittest.RequireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	tag := fmt.Sprint(os.Getpid())
	a, b := "contid-pksa-"+tag, "contid-pksb-"+tag
	fa := netns(t, a, "iptables -I OUTPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT")
	netns(t, b, "iptables -I OUTPUT -o lo -p udp --dport 9999 -j AUDIT --type accept")

	stolenThenUnwatched(t, fa, stealScript, "/run/netns/"+a, "/run/netns/"+b)
}

// pinnedSetns is the start of the stolen-packet scripts: the task pinned
// to CPU 0 (the entries it leaves are per CPU), enter(path), a setns into
// a network namespace, and send_unwatched(path), which enters one and
// sends a small datagram on its loopback: the record to pair.
const pinnedSetns = `
import ctypes, os, socket, sys
os.sched_setaffinity(0, {0})
libc = ctypes.CDLL(None, use_errno=True)
def enter(path):
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, 0x40000000) != 0:
        sys.exit("setns %s: %d" % (path, ctypes.get_errno()))
    os.close(fd)
def send_unwatched(path):
    enter(path)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"y", ("127.0.0.1", 9999))
`

// stolenThenUnwatched watches namespace fa at every hook (it has no audit
// rule; the programs run there all the same, so its traversals push the
// entries the script's packets leave when they are stolen), runs the
// python script with args, and fails unless the one record it makes (in
// an unwatched namespace) pairs with no namespace.
func stolenThenUnwatched(t *testing.T, fa *os.File, script string, args ...string) {
	t.Helper()
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w, err := p.Watch(fa)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.watchHooks(AllHooks); err != nil {
		t.Fatal(err)
	}
	audittest.Auditctl(t, "-e", "1")
	if out, err := exec.Command("python3", append([]string{"-c", script}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	pr := nextPairs(t, pairs(p), 1)[0]
	if pr.Known {
		t.Fatalf("the record of the unwatched namespace paired with namespace ino %d: %+v", pr.NetnsIno, pr)
	}
	t.Logf("pair: %+v", pr)
}

// watchPairs loads the programs, watches the namespaces at the hooks
// their rules name, and returns the probe and the pairs it hands over; all
// of it is closed at cleanup.
func watchPairs(t *testing.T, namespaces ...*os.File) (*Probe, <-chan Pair) {
	t.Helper()
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	for _, f := range namespaces {
		w, err := p.Watch(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		if err := w.Recheck(); err != nil {
			t.Fatal(err)
		}
	}
	return p, pairs(p)
}

// pairs reads p's pairs into a channel, closed when Read fails (p closed).
func pairs(p *Probe) <-chan Pair {
	ch := make(chan Pair, 64)
	go func() {
		defer close(ch)
		for {
			pr, err := p.Read()
			if err != nil {
				return
			}
			ch <- pr
		}
	}()
	return ch
}
