package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/records"
	"github.com/contid/contid/internal/source/auditnl/audittest"
)

// TestAuditPacketArrivalOrder: a NETFILTER_PKT record, which the kernel
// writes as an event of its own, is written when it arrives: before a user
// record the kernel queued after it, not after the reassembly timeout.
func TestAuditPacketArrivalOrder(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	ns := fmt.Sprintf("contid-e2e-pkt%d", os.Getpid())
	_, errOut, code := d.sh(`set -e
ip netns add ` + ns + `
trap 'ip netns del ` + ns + `' EXIT
ip -n ` + ns + ` link set lo up
ip netns exec ` + ns + ` iptables -I INPUT -i lo -p icmp --icmp-type echo-request -j AUDIT --type accept
ip netns exec ` + ns + ` busybox ping -c 1 -q 127.0.0.1 >/dev/null
auditctl -m contid-e2e-after-packet
`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pkt, marker := -1, -1
	waitFor(t, func() bool {
		pkt, marker = -1, -1
		for i, r := range d.logRecords() {
			switch {
			case r.Type == records.NetfilterPkt && pkt < 0:
				pkt = i
			case r.Type == 1005 && strings.Contains(r.Raw, "contid-e2e-after-packet"):
				marker = i
			}
		}
		return marker >= 0
	}, "the user record sent after the packet")
	if pkt < 0 || pkt > marker {
		b, _ := os.ReadFile(d.dir + "/audit.log")
		t.Fatalf("NETFILTER_PKT at line %d, the user record sent after it at %d; want the packet first\n%s", pkt, marker, b)
	}
}

// TestAuditPacketContainers: two containers in one network namespace with
// an AUDIT rule on loopback and a MARK rule in mangle: the NETFILTER_PKT of
// a ping carries one CONTAINER_ID listing both contids, and a packet
// logged in a namespace without containers carries none.
func TestAuditPacketContainers(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	tag := fmt.Sprint(os.Getpid())
	x, y := "contid-e2e-pkx"+tag, "contid-e2e-pky"+tag
	auditNetns(t, d, x, "0x71")
	auditNetns(t, d, y, "0x72")
	sleepers(t, d, x+":710", x+":711")

	// The namespace is watched once the daemon sees both containers in it;
	// until then a packet record carries no CONTAINER_ID. Ping until one
	// does.
	var got string
	waitFor(t, func() bool {
		d.sh("ip netns exec " + x + " busybox ping -q -c 1 127.0.0.1 >/dev/null")
		for _, e := range readEvents(t, d.dir+"/audit.log") {
			if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark=0x71") {
				if c := e.described(i); c != "" {
					got = c
				}
			}
		}
		return got != "" && strings.Count(got, ",") >= 1
	}, "a packet record of the containers' namespace with a CONTAINER_ID")
	ids := strings.Split(got, ",")
	if len(ids) != 2 || !(ids[0] == "711" && ids[1] == "710" || ids[0] == "710" && ids[1] == "711") {
		t.Fatalf("CONTAINER_ID contid=%s, want both 710 and 711", got)
	}
	// Each container's own log gets the packet's event, with its
	// CONTAINER_ID (written in the same commit as the host log's).
	for _, id := range []string{"710", "711"} {
		waitFor(t, func() bool {
			for _, f := range d.containerLogs(id) {
				for _, e := range readEvents(t, f) {
					if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark=0x71") && e.described(i) != "" {
						return true
					}
				}
			}
			return false
		}, "the packet event in container "+id+"'s log")
	}

	// A namespace without containers: its record, written before a user
	// record sent after it, has no CONTAINER_ID.
	if _, errOut, code := d.sh("ip netns exec " + y + " busybox ping -q -c 1 127.0.0.1 >/dev/null && auditctl -m contid-e2e-after-y"); code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, func() bool {
		for _, r := range d.logRecords() {
			if r.Type == 1005 && strings.Contains(r.Raw, "contid-e2e-after-y") {
				return true
			}
		}
		return false
	}, "the user record after the ping in the namespace without containers")
	seen := false
	for _, e := range readEvents(t, d.dir+"/audit.log") {
		if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark=0x72") {
			seen = true
			if c := e.described(i); c != "" {
				t.Errorf("a packet of a namespace without containers got contid=%s", c)
			}
		}
	}
	if !seen {
		t.Error("no packet record of the namespace without containers")
	}
	for _, id := range []string{"710", "711"} {
		if n := countIn(d.containerLogs(id), "mark=0x72"); n != 0 {
			t.Errorf("container %s's log has %d packet records of the other namespace", id, n)
		}
	}

	// Status counts both kinds: placed with containers, and not placed
	// (the namespace without containers is not watched).
	c := d.status().Counters
	if c["packets_contained"] < 1 || c["packets_unattributed"] < 1 || c["packets_netns_watched"] < 1 ||
		c["packets"] != c["packets_contained"]+c["packets_uncontained"]+c["packets_unattributed"] {
		t.Errorf("packet counters: %v", c)
	}
}

// TestAuditPacketVeth: two namespaces joined by a veth pair, one container
// each, an iptables AUDIT rule in one and an nftables `log level audit`
// rule in the other, a ping each way: each echo request's record carries
// exactly the container of the namespace that received it.
func TestAuditPacketVeth(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	tag := fmt.Sprint(os.Getpid())
	a, b := "contid-e2e-pka"+tag, "contid-e2e-pkb"+tag
	if _, errOut, code := d.sh(`set -e
ip netns add ` + a + `
ip netns add ` + b + `
ip -n ` + a + ` link add pkv0 type veth peer name pkv1 netns ` + b + `
ip -n ` + a + ` addr add 10.253.0.1/30 dev pkv0
ip -n ` + b + ` addr add 10.253.0.2/30 dev pkv1
ip -n ` + a + ` link set pkv0 up
ip -n ` + b + ` link set pkv1 up
ip netns exec ` + a + ` iptables -t mangle -I PREROUTING -p icmp --icmp-type echo-request -j MARK --set-mark 0xa1
ip netns exec ` + a + ` iptables -I INPUT -p icmp --icmp-type echo-request -j AUDIT --type accept
ip netns exec ` + b + ` nft 'add table inet pk; add chain inet pk in { type filter hook input priority 0; }; add rule inet pk in icmp type echo-request meta mark set 0xb1 log level audit'
`); code != 0 {
		t.Fatalf("setup: %s", errOut)
	}
	t.Cleanup(func() { d.sh("ip netns del " + a + "; ip netns del " + b) })
	d.containers(t, `ip netns exec `+a+` "$C" exec --contid 720 -- sleep 60 & ip netns exec `+b+` "$C" exec --contid 721 -- sleep 60 & wait`)

	// mark → the only contid its records may carry.
	want := map[string]string{"mark=0xa1": "720", "mark=0xb1": "721"}
	waitFor(t, func() bool {
		d.sh("ip netns exec " + a + " busybox ping -q -c 1 10.253.0.2 >/dev/null; ip netns exec " + b + " busybox ping -q -c 1 10.253.0.1 >/dev/null")
		done := map[string]bool{}
		for _, e := range readEvents(t, d.dir+"/audit.log") {
			i, r := e.first(records.NetfilterPkt)
			if r == nil {
				continue
			}
			for mark, id := range want {
				if !strings.Contains(r.Raw, mark) {
					continue
				}
				switch c := e.described(i); c {
				case "": // before the namespace was watched
				case id:
					done[mark] = true
				default:
					t.Fatalf("a record with %s carries contid=%s, want %s only", mark, c, id)
				}
			}
		}
		return len(done) == 2
	}, "a record of each namespace with its container's contid")
}

// TestAuditPacketUnprivileged: an unprivileged user makes packet records
// of its own (a user and network namespace with an nftables `log level
// audit` rule) while a container's namespace logs packets too: none of the
// user's records carries a CONTAINER_ID, the container's do.
func TestAuditPacketUnprivileged(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	x := fmt.Sprint("contid-e2e-pku", os.Getpid())
	auditNetns(t, d, x, "0x73")
	sleepers(t, d, x+":730")
	// The user pings in its own namespace for as long as the test waits.
	if _, errOut, code := d.sh(`
setsid setpriv --reuid 65534 --regid 65534 --clear-groups unshare -Urn sh -c "ip link set lo up && nft 'add table inet ev; add chain inet ev in { type filter hook input priority 0; }; add rule inet ev in icmp type echo-request meta mark set 0xee log level audit' && exec busybox ping -q -i 0.05 127.0.0.1" </dev/null >/dev/null 2>&1 &
echo $! > "` + d.dir + `/pkt-user"
`); code != 0 {
		t.Fatalf("user: %s", errOut)
	}
	t.Cleanup(func() { d.sh(`kill -TERM -$(cat "` + d.dir + `/pkt-user")`) })

	user, contained := 0, 0
	waitFor(t, func() bool {
		d.sh("ip netns exec " + x + " busybox ping -q -c 1 127.0.0.1 >/dev/null")
		user, contained = 0, 0
		for _, e := range readEvents(t, d.dir+"/audit.log") {
			i, r := e.first(records.NetfilterPkt)
			if r == nil {
				continue
			}
			c := e.described(i)
			switch {
			case strings.Contains(r.Raw, "mark=0xee"):
				user++
				if c != "" {
					t.Fatalf("the unprivileged user's packet record carries contid=%s", c)
				}
			case strings.Contains(r.Raw, "mark=0x73") && c == "730":
				contained++
			}
		}
		return contained > 0 && user >= 20
	}, "the container's packet record with its contid and the user's records")
}

// TestAuditPacketRuleLater: a container's namespace without audit packet
// rules runs no pairing program; an nftables `log level audit` rule added
// later (the kernel reports the change, NETFILTER_CFG) is found, and the
// packet records it logs carry the container's contid.
func TestAuditPacketRuleLater(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	x := fmt.Sprint("contid-e2e-pkl", os.Getpid())
	if _, errOut, code := d.sh(`set -e
ip netns add ` + x + `
ip -n ` + x + ` link set lo up
`); code != 0 {
		t.Fatalf("setup: %s", errOut)
	}
	t.Cleanup(func() { d.sh("ip netns del " + x) })
	d.containers(t, `ip netns exec `+x+` "$C" exec --contid 740 -- sleep 60`)
	// Status is published after each batch of records: a user record makes
	// one.
	d.until(func() bool {
		d.sh("auditctl -m contid-e2e-nudge")
		return d.status().Counters["packets_netns_watched"] >= 1
	}, "the container's namespace watched")
	if _, errOut, code := d.sh("ip netns exec " + x + ` nft 'add table inet pkl; add chain inet pkl in { type filter hook input priority 0; }; add rule inet pkl in icmp type echo-request meta mark set 0x74 log level audit'`); code != 0 {
		t.Fatalf("rule: %s", errOut)
	}
	pingUntilAttributed(t, d, x, "0x74", "740", "a packet record of the rule added later with the container's contid")
}

// TestAuditPacketListener: in audit mode listener (auditd is the audit
// daemon, contid reads the kernel's multicast copy), a packet record of a
// container's namespace carries the container's contid in contid's log.
func TestAuditPacketListener(t *testing.T) {
	requireRoot(t)
	audittest.Lock(t)
	audittest.Restore(t)
	startAuditd(t, "")
	d := startDaemon(t, "", "--audit", "listener")
	x := fmt.Sprint("contid-e2e-pkli", os.Getpid())
	auditNetns(t, d, x, "0x75")
	sleepers(t, d, x+":750")
	pingUntilAttributed(t, d, x, "0x75", "750", "a packet record with the container's contid in listener mode")
}

// TestAuditPacketRuleChurn (attack): root in a container writes a large
// ruleset in its own network namespace and changes it in a loop, each
// change a NETFILTER_CFG record that makes contid read the watched
// namespaces' rules again. Records keep flowing and another container's
// packet records keep their contid.
func TestAuditPacketRuleChurn(t *testing.T) {
	d := startAudit(t, "-a always,exit -F arch=b64 -S kill -F key=contid-e2e-pkt\n")
	tag := fmt.Sprint(os.Getpid())
	x, y := "contid-e2e-pkcx"+tag, "contid-e2e-pkcy"+tag
	rules := filepath.Join(d.dir, "big.nft")
	var b strings.Builder
	b.WriteString("add table inet big\nadd chain inet big in { type filter hook input priority 0; }\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "add rule inet big in tcp dport %d counter\n", 1000+i)
	}
	b.WriteString("add rule inet big in icmp type echo-request log level audit\n")
	if err := os.WriteFile(rules, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := d.sh(`set -e
ip netns add ` + x + `
ip netns add ` + y + `
ip -n ` + x + ` link set lo up
ip -n ` + y + ` link set lo up
ip netns exec ` + x + ` iptables -t mangle -I OUTPUT -o lo -p icmp --icmp-type echo-request -j MARK --set-mark 0x76
ip netns exec ` + x + ` iptables -I INPUT -i lo -p icmp --icmp-type echo-request -j AUDIT --type accept
`); code != 0 {
		t.Fatalf("setup: %s", errOut)
	}
	t.Cleanup(func() { d.sh("ip netns del " + x + "; ip netns del " + y) })
	d.containers(t, `ip netns exec `+x+` "$C" exec --contid 760 -- sleep 120 & ip netns exec `+y+` "$C" exec --contid 761 -- sh -c "nft -f `+rules+` && while :; do nft add table inet churn && nft delete table inet churn; done" & wait`)
	churned := func() int { return countIn([]string{d.dir + "/audit.log"}, "type=NETFILTER_CFG") }
	d.until(func() bool { return churned() > 200 }, "the container's table changes in the log")
	pingUntilAttributed(t, d, x, "0x76", "760", "a packet record with its container's contid while another container churns its rules")
	if n := churned(); n <= 200 {
		t.Fatalf("churn stopped: %d NETFILTER_CFG records", n)
	}
}

// pingUntilAttributed pings loopback in namespace netns until the host log
// holds a packet record with the given mark attributed to want. Records
// of the mark without a CONTAINER_ID (logged before contid watched the
// namespace's hooks) are passed over; one attributed to anything else
// fails the test.
func pingUntilAttributed(t *testing.T, d *daemon, netns, mark, want, what string) {
	t.Helper()
	waitFor(t, func() bool {
		d.sh("ip netns exec " + netns + " busybox ping -q -c 1 127.0.0.1 >/dev/null")
		for _, e := range readEvents(t, d.dir+"/audit.log") {
			if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark="+mark) {
				switch c := e.described(i); c {
				case "":
				case want:
					return true
				default:
					t.Fatalf("the packet record carries contid=%s, want %s", c, want)
				}
			}
		}
		return false
	}, what)
}

// TestAuditPacketPlugin: in audit mode plugin (auditd starts `contid
// audisp` and hands it the records, here with `node=` names), the issue's
// netns case holds: two containers in one namespace, an AUDIT rule on
// loopback and a MARK rule, a ping: the packet record carries a
// CONTAINER_ID listing both. Then auditd is started again, listening for
// remote logging and handing on what it receives: its feed may now hold
// other hosts' records, whose node names prove nothing, so a packet record
// gets no CONTAINER_ID and is counted as not local.
func TestAuditPacketPlugin(t *testing.T) {
	dir, logDir, sock, pinDir := audispSetup(t, "pkplugin")
	cfg := filepath.Join(dir, "contid.toml")
	if err := os.WriteFile(cfg, []byte("log_dir = \""+logDir+"\"\nsocket = \""+sock+"\"\npin_dir = \""+pinDir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plugin := "active = yes\ndirection = out\npath = " + contidBin + "\ntype = always\nargs = audisp --config=" + cfg + "\nformat = string\n"
	const node = "contid-e2e-node"
	auditd := startAuditdConf(t, plugin, "name_format = user\nname = "+node+"\n")
	d := &daemon{t: t, dir: logDir, socket: sock}
	d.awaitAudisp(auditd)

	x := fmt.Sprint("contid-e2e-pkpl", os.Getpid())
	auditNetns(t, d, x, "0x77")
	sleepers(t, d, x+":770", x+":771")
	var got string
	waitFor(t, func() bool {
		d.sh("ip netns exec " + x + " busybox ping -q -c 1 127.0.0.1 >/dev/null")
		for _, e := range readEvents(t, logDir+"/audit.log") {
			if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark=0x77") {
				if r.Node != node {
					t.Fatalf("packet record of node %q, want %q (auditd's name): %s", r.Node, node, r.Raw)
				}
				if c := e.described(i); c != "" {
					got = c
				}
			}
		}
		return strings.Count(got, ",") >= 1
	}, "a packet record from auditd's feed with both containers' CONTAINER_ID")
	if ids := strings.Split(got, ","); len(ids) != 2 || !(ids[0] == "771" && ids[1] == "770" || ids[0] == "770" && ids[1] == "771") {
		t.Fatalf("CONTAINER_ID contid=%s, want both 770 and 771", got)
	}

	// Remote logging on: auditd (restarted: 3.0 opens its listener only at
	// start) listens and hands on what it receives. The containers outlive
	// the restart, and the new plugin watches their namespace again.
	auditd.stop(t)
	waitFor(t, func() bool { _, err := os.Stat(sock); return os.IsNotExist(err) }, "contid audisp to stop with auditd")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	auditd = startAuditdConf(t, plugin, fmt.Sprintf("name_format = user\nname = %s\ntcp_listen_port = %d\ndistribute_network = yes\n", node, port))
	waitFor(t, func() bool {
		out, _ := exec.Command("ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output()
		return len(strings.TrimSpace(string(out))) > 0
	}, "auditd listening for remote logging")
	waitFor(t, func() bool {
		_, _, code := d.sh(`"$C" status >/dev/null 2>&1`)
		return code == 0 && d.status().Counters["packets_netns_watched"] >= 1
	}, "the new contid audisp watching the containers' namespace")
	before := d.status().Counters["packets_not_local"]
	if _, errOut, code := d.sh("ip netns exec " + x + " busybox ping -q -c 1 127.0.0.1 >/dev/null && auditctl -m contid-e2e-after-listen"); code != 0 {
		t.Fatal(errOut)
	}
	waitFor(t, func() bool { return countIn([]string{logDir + "/audit.log"}, "contid-e2e-after-listen") > 0 }, "the user record after the ping")
	last := ""
	for _, e := range readEvents(t, logDir+"/audit.log") {
		if i, r := e.first(records.NetfilterPkt); r != nil && strings.Contains(r.Raw, "mark=0x77") {
			last = e.described(i)
		}
	}
	if last != "" {
		t.Errorf("a packet record read while auditd listened for other hosts carries contid=%s", last)
	}
	if after := d.status().Counters["packets_not_local"]; after <= before {
		t.Errorf("packets_not_local %d → %d, want an increase", before, after)
	}
}

// auditNetns adds network namespace n with loopback up and, on loopback,
// a mangle rule marking echo requests with mark and an iptables AUDIT rule
// logging them; the namespace is deleted at cleanup.
func auditNetns(t *testing.T, d *daemon, n, mark string) {
	t.Helper()
	if _, errOut, code := d.sh(`set -e
ip netns add ` + n + `
ip -n ` + n + ` link set lo up
ip netns exec ` + n + ` iptables -t mangle -I OUTPUT -o lo -p icmp --icmp-type echo-request -j MARK --set-mark ` + mark + `
ip netns exec ` + n + ` iptables -I INPUT -i lo -p icmp --icmp-type echo-request -j AUDIT --type accept
`); code != 0 {
		t.Fatalf("namespace %s: %s", n, errOut)
	}
	t.Cleanup(func() { d.sh("ip netns del " + n) })
}

// sleepers starts a sleeping container for each NETNS:CONTID, in that
// network namespace, in one background process group that is killed at
// cleanup (before namespaces added earlier are deleted).
func sleepers(t *testing.T, d *daemon, inNetns ...string) {
	t.Helper()
	var script strings.Builder
	for _, s := range inNetns {
		n, id, _ := strings.Cut(s, ":")
		fmt.Fprintf(&script, `ip netns exec %s "$C" exec --contid %s -- sleep 120 & `, n, id)
	}
	pids := filepath.Join(t.TempDir(), "sleepers")
	if _, errOut, code := d.sh(`setsid sh -c '` + script.String() + `wait' </dev/null >/dev/null 2>&1 &
echo $! > "` + pids + `"`); code != 0 {
		t.Fatalf("containers: %s", errOut)
	}
	t.Cleanup(func() { d.sh(`kill -TERM -$(cat "` + pids + `")`) })
}

// containers runs script (no single quotes in it), which starts a test's
// containers, in a session of its own with its output discarded; a
// cleanup, run before those registered earlier, ends the session.
func (d *daemon) containers(t *testing.T, script string) {
	t.Helper()
	pids := filepath.Join(d.dir, "pkt-sleepers")
	if _, errOut, code := d.sh(`setsid sh -c '` + script + `' </dev/null >/dev/null 2>&1 &
echo $! > "` + pids + `"`); code != 0 {
		t.Fatalf("containers: %s", errOut)
	}
	t.Cleanup(func() { d.sh(`kill -TERM -$(cat "` + pids + `")`) })
}
