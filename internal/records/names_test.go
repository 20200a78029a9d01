package records

import (
	"errors"
	"testing"
)

func TestTypeNames(t *testing.T) {
	tests := []struct {
		t             Type
		name, raw, st string
	}{
		{1005, "USER", "USER", "USER"},
		{1006, "LOGIN", "LOGIN", "LOGIN"},
		{1100, "USER_AUTH", "USER_AUTH", "USER_AUTH"},
		{1105, "USER_START", "USER_START", "USER_START"},
		{1107, "USER_AVC", "USER_AVC", "USER_AVC"},
		{1200, "DAEMON_START", "DAEMON_START", "DAEMON_START"},
		{1300, "SYSCALL", "SYSCALL", "SYSCALL"},
		{1302, "PATH", "PATH", "PATH"},
		{1305, "CONFIG_CHANGE", "CONFIG_CHANGE", "CONFIG_CHANGE"},
		{1307, "CWD", "CWD", "CWD"},
		{1309, "EXECVE", "EXECVE", "EXECVE"},
		{1318, "OBJ_PID", "OBJ_PID", "OBJ_PID"},
		{1320, "EOE", "EOE", "EOE"},
		{1324, "NETFILTER_PKT", "NETFILTER_PKT", "NETFILTER_PKT"},
		{1327, "PROCTITLE", "PROCTITLE", "PROCTITLE"},
		{1334, "BPF", "BPF", "BPF"},
		{1335, "EVENT_LISTENER", "EVENT_LISTENER", "EVENT_LISTENER"},
		{1336, "URINGOP", "URINGOP", "URINGOP"},
		{1337, "OPENAT2", "OPENAT2", "OPENAT2"},
		{1400, "AVC", "AVC", "AVC"},
		{1700, "ANOM_PROMISCUOUS", "ANOM_PROMISCUOUS", "ANOM_PROMISCUOUS"},
		{1701, "ANOM_ABEND", "ANOM_ABEND", "ANOM_ABEND"},
		{2000, "KERNEL", "KERNEL", "KERNEL"},
		{2100, "ANOM_LOGIN_FAILURES", "ANOM_LOGIN_FAILURES", "ANOM_LOGIN_FAILURES"},
		{2507, "VIRT_MIGRATE_OUT", "VIRT_MIGRATE_OUT", "VIRT_MIGRATE_OUT"},
		// Named after 3.0.9: known, but written as 3.0.9's auditd does.
		{1338, "DM_CTRL", "UNKNOWN[1338]", "DM_CTRL"},
		{1424, "LANDLOCK_DOMAIN", "UNKNOWN[1424]", "LANDLOCK_DOMAIN"},
		// contid's own.
		{ContainerOp, "CONTAINER_OP", "UNKNOWN[2900]", "CONTAINER_OP"},
		{ContainerID, "CONTAINER_ID", "UNKNOWN[2901]", "CONTAINER_ID"},
		{SetCapcontid, "SET_CAPCONTID", "UNKNOWN[2902]", "SET_CAPCONTID"},
		{NSInfo, "NS_INFO", "UNKNOWN[2903]", "NS_INFO"},
		{NSCreate, "NS_CREATE", "UNKNOWN[2904]", "NS_CREATE"},
		{NSChange, "NS_CHANGE", "UNKNOWN[2905]", "NS_CHANGE"},
		{NSDestroy, "NS_DESTROY", "UNKNOWN[2906]", "NS_DESTROY"},
		{ContidLoss, "CONTID_LOSS", "UNKNOWN[2907]", "CONTID_LOSS"},
		{ContidForged, "CONTID_FORGED", "UNKNOWN[2908]", "CONTID_FORGED"},
		// Nobody's.
		{0, "", "UNKNOWN[0]", "UNKNOWN[0]"},
		{1301, "", "UNKNOWN[1301]", "UNKNOWN[1301]"},
		{2909, "", "UNKNOWN[2909]", "UNKNOWN[2909]"},
		{65535, "", "UNKNOWN[65535]", "UNKNOWN[65535]"},
	}
	for _, tt := range tests {
		if got := tt.t.Name(); got != tt.name {
			t.Errorf("Type(%d).Name() = %q, want %q", tt.t, got, tt.name)
		}
		if got := tt.t.RawName(); got != tt.raw {
			t.Errorf("Type(%d).RawName() = %q, want %q", tt.t, got, tt.raw)
		}
		if got := tt.t.String(); got != tt.st {
			t.Errorf("Type(%d).String() = %q, want %q", tt.t, got, tt.st)
		}
		for _, s := range []string{tt.raw, tt.st} {
			if got, err := ParseType(s); err != nil || got != tt.t {
				t.Errorf("ParseType(%q) = %d, %v; want %d", s, got, err, tt.t)
			}
		}
	}
}

func TestTypeTables(t *testing.T) {
	if len(stockNames) != 195 {
		t.Errorf("libaudit 3.0.9 names 195 types, table has %d", len(stockNames))
	}
	for i := 1; i < len(stockNames); i++ {
		if stockNames[i-1].t >= stockNames[i].t {
			t.Errorf("stockNames not sorted at %d (%d)", i, stockNames[i].t)
		}
	}
	seen := map[string]bool{}
	for _, n := range byName {
		if seen[n.name] {
			t.Errorf("name %q twice", n.name)
		}
		seen[n.name] = true
		if got, err := ParseType(n.name); err != nil || got != n.t {
			t.Errorf("ParseType(%q) = %d, %v", n.name, got, err)
		}
	}
	for _, n := range append(laterNames[:], contidNames[:]...) {
		if stockName(n.t) != "" {
			t.Errorf("%s (%d) collides with a libaudit 3.0.9 type", n.name, n.t)
		}
	}
	for _, n := range contidNames {
		// spec §5: the "future user space" range, away from 1334–1336.
		if n.t < 2600 || n.t > 2999 {
			t.Errorf("%s = %d outside 2600–2999", n.name, n.t)
		}
	}
}

func TestParseTypeErrors(t *testing.T) {
	for _, s := range []string{
		"", "syscall", "SYSCALLX", "UNKNOWN[]", "UNKNOWN[65536]", "UNKNOWN[+1]",
		"UNKNOWN[-1]", "UNKNOWN[1", "65536", "1300x", "-1", "UNKNOWN[ 1]",
	} {
		got, err := ParseType(s)
		if err == nil {
			t.Errorf("ParseType(%q) = %d, want an error", s, got)
			continue
		}
		if !errors.Is(err, ErrUnknownType) {
			t.Errorf("ParseType(%q) error %v does not wrap ErrUnknownType", s, err)
		}
	}
}

func TestHexField(t *testing.T) {
	tests := []struct {
		t    Type
		key  string
		want bool
	}{
		{1300, "comm", true},
		{1300, "exe", true},
		{1300, "key", true},
		{1300, "a0", false}, // SYSCALL arguments are hex numbers
		{1309, "a0", true},
		{1309, "a12", true},
		{1309, "a1[0]", true},
		{1309, "a1[12]", true},
		{1309, "a1_len", false},
		{1309, "argc", false},
		{1309, "a", false},
		{1309, "a1[]", false},
		{1309, "a1[x]", false},
		{1309, "ab", false},
		{1327, "proctitle", true},
		{1306, "saddr", false},
		{1107, "acct", true},
		{2901, "contid", false},
	}
	for _, tt := range tests {
		if got := HexField(tt.t, tt.key); got != tt.want {
			t.Errorf("HexField(%d, %q) = %v, want %v", tt.t, tt.key, got, tt.want)
		}
	}
}

func TestNameLengths(t *testing.T) {
	for _, n := range byName {
		if len(n.name) > 31 {
			t.Errorf("%s longer than ParseMessage's name buffer", n.name)
		}
	}
}
