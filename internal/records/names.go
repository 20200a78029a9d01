package records

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

type typeName struct {
	t    Type
	name string
}

// stockNames is every record type libaudit 3.0.9 names, sorted by number.
// It was read from the installed libaudit.so.1 (Debian 1:3.0.9-1) by calling
// audit_msg_type_to_name for 0–9999; auditd of that version writes exactly
// these names and UNKNOWN[n] for every other type.
var stockNames = [...]typeName{
	{1005, "USER"},
	{1006, "LOGIN"},
	{1100, "USER_AUTH"},
	{1101, "USER_ACCT"},
	{1102, "USER_MGMT"},
	{1103, "CRED_ACQ"},
	{1104, "CRED_DISP"},
	{1105, "USER_START"},
	{1106, "USER_END"},
	{1107, "USER_AVC"},
	{1108, "USER_CHAUTHTOK"},
	{1109, "USER_ERR"},
	{1110, "CRED_REFR"},
	{1111, "USYS_CONFIG"},
	{1112, "USER_LOGIN"},
	{1113, "USER_LOGOUT"},
	{1114, "ADD_USER"},
	{1115, "DEL_USER"},
	{1116, "ADD_GROUP"},
	{1117, "DEL_GROUP"},
	{1118, "DAC_CHECK"},
	{1119, "CHGRP_ID"},
	{1120, "TEST"},
	{1121, "TRUSTED_APP"},
	{1122, "USER_SELINUX_ERR"},
	{1123, "USER_CMD"},
	{1124, "USER_TTY"},
	{1125, "CHUSER_ID"},
	{1126, "GRP_AUTH"},
	{1127, "SYSTEM_BOOT"},
	{1128, "SYSTEM_SHUTDOWN"},
	{1129, "SYSTEM_RUNLEVEL"},
	{1130, "SERVICE_START"},
	{1131, "SERVICE_STOP"},
	{1132, "GRP_MGMT"},
	{1133, "GRP_CHAUTHTOK"},
	{1134, "MAC_CHECK"},
	{1135, "ACCT_LOCK"},
	{1136, "ACCT_UNLOCK"},
	{1137, "USER_DEVICE"},
	{1138, "SOFTWARE_UPDATE"},
	{1200, "DAEMON_START"},
	{1201, "DAEMON_END"},
	{1202, "DAEMON_ABORT"},
	{1203, "DAEMON_CONFIG"},
	{1205, "DAEMON_ROTATE"},
	{1206, "DAEMON_RESUME"},
	{1207, "DAEMON_ACCEPT"},
	{1208, "DAEMON_CLOSE"},
	{1209, "DAEMON_ERR"},
	{1300, "SYSCALL"},
	{1302, "PATH"},
	{1303, "IPC"},
	{1304, "SOCKETCALL"},
	{1305, "CONFIG_CHANGE"},
	{1306, "SOCKADDR"},
	{1307, "CWD"},
	{1309, "EXECVE"},
	{1311, "IPC_SET_PERM"},
	{1312, "MQ_OPEN"},
	{1313, "MQ_SENDRECV"},
	{1314, "MQ_NOTIFY"},
	{1315, "MQ_GETSETATTR"},
	{1316, "KERNEL_OTHER"},
	{1317, "FD_PAIR"},
	{1318, "OBJ_PID"},
	{1319, "TTY"},
	{1320, "EOE"},
	{1321, "BPRM_FCAPS"},
	{1322, "CAPSET"},
	{1323, "MMAP"},
	{1324, "NETFILTER_PKT"},
	{1325, "NETFILTER_CFG"},
	{1326, "SECCOMP"},
	{1327, "PROCTITLE"},
	{1328, "FEATURE_CHANGE"},
	{1330, "KERN_MODULE"},
	{1331, "FANOTIFY"},
	{1332, "TIME_INJOFFSET"},
	{1333, "TIME_ADJNTPVAL"},
	{1334, "BPF"},
	{1335, "EVENT_LISTENER"},
	{1336, "URINGOP"},
	{1337, "OPENAT2"},
	{1400, "AVC"},
	{1401, "SELINUX_ERR"},
	{1402, "AVC_PATH"},
	{1403, "MAC_POLICY_LOAD"},
	{1404, "MAC_STATUS"},
	{1405, "MAC_CONFIG_CHANGE"},
	{1406, "MAC_UNLBL_ALLOW"},
	{1407, "MAC_CIPSOV4_ADD"},
	{1408, "MAC_CIPSOV4_DEL"},
	{1409, "MAC_MAP_ADD"},
	{1410, "MAC_MAP_DEL"},
	{1411, "MAC_IPSEC_ADDSA"},
	{1412, "MAC_IPSEC_DELSA"},
	{1413, "MAC_IPSEC_ADDSPD"},
	{1414, "MAC_IPSEC_DELSPD"},
	{1415, "MAC_IPSEC_EVENT"},
	{1416, "MAC_UNLBL_STCADD"},
	{1417, "MAC_UNLBL_STCDEL"},
	{1418, "MAC_CALIPSO_ADD"},
	{1419, "MAC_CALIPSO_DEL"},
	{1500, "APPARMOR"},
	{1501, "APPARMOR_AUDIT"},
	{1502, "APPARMOR_ALLOWED"},
	{1503, "APPARMOR_DENIED"},
	{1504, "APPARMOR_HINT"},
	{1505, "APPARMOR_STATUS"},
	{1506, "APPARMOR_ERROR"},
	{1507, "APPARMOR_KILL"},
	{1700, "ANOM_PROMISCUOUS"},
	{1701, "ANOM_ABEND"},
	{1702, "ANOM_LINK"},
	{1703, "ANOM_CREAT"},
	{1800, "INTEGRITY_DATA"},
	{1801, "INTEGRITY_METADATA"},
	{1802, "INTEGRITY_STATUS"},
	{1803, "INTEGRITY_HASH"},
	{1804, "INTEGRITY_PCR"},
	{1805, "INTEGRITY_RULE"},
	{1806, "INTEGRITY_EVM_XATTR"},
	{1807, "INTEGRITY_POLICY_RULE"},
	{2000, "KERNEL"},
	{2100, "ANOM_LOGIN_FAILURES"},
	{2101, "ANOM_LOGIN_TIME"},
	{2102, "ANOM_LOGIN_SESSIONS"},
	{2103, "ANOM_LOGIN_ACCT"},
	{2104, "ANOM_LOGIN_LOCATION"},
	{2105, "ANOM_MAX_DAC"},
	{2106, "ANOM_MAX_MAC"},
	{2107, "ANOM_AMTU_FAIL"},
	{2108, "ANOM_RBAC_FAIL"},
	{2109, "ANOM_RBAC_INTEGRITY_FAIL"},
	{2110, "ANOM_CRYPTO_FAIL"},
	{2111, "ANOM_ACCESS_FS"},
	{2112, "ANOM_EXEC"},
	{2113, "ANOM_MK_EXEC"},
	{2114, "ANOM_ADD_ACCT"},
	{2115, "ANOM_DEL_ACCT"},
	{2116, "ANOM_MOD_ACCT"},
	{2117, "ANOM_ROOT_TRANS"},
	{2118, "ANOM_LOGIN_SERVICE"},
	{2119, "ANOM_LOGIN_ROOT"},
	{2120, "ANOM_ORIGIN_FAILURES"},
	{2121, "ANOM_SESSION"},
	{2200, "RESP_ANOMALY"},
	{2201, "RESP_ALERT"},
	{2202, "RESP_KILL_PROC"},
	{2203, "RESP_TERM_ACCESS"},
	{2204, "RESP_ACCT_REMOTE"},
	{2205, "RESP_ACCT_LOCK_TIMED"},
	{2206, "RESP_ACCT_UNLOCK_TIMED"},
	{2207, "RESP_ACCT_LOCK"},
	{2208, "RESP_TERM_LOCK"},
	{2209, "RESP_SEBOOL"},
	{2210, "RESP_EXEC"},
	{2211, "RESP_SINGLE"},
	{2212, "RESP_HALT"},
	{2213, "RESP_ORIGIN_BLOCK"},
	{2214, "RESP_ORIGIN_BLOCK_TIMED"},
	{2215, "RESP_ORIGIN_UNBLOCK_TIMED"},
	{2300, "USER_ROLE_CHANGE"},
	{2301, "ROLE_ASSIGN"},
	{2302, "ROLE_REMOVE"},
	{2303, "LABEL_OVERRIDE"},
	{2304, "LABEL_LEVEL_CHANGE"},
	{2305, "USER_LABELED_EXPORT"},
	{2306, "USER_UNLABELED_EXPORT"},
	{2307, "DEV_ALLOC"},
	{2308, "DEV_DEALLOC"},
	{2309, "FS_RELABEL"},
	{2310, "USER_MAC_POLICY_LOAD"},
	{2311, "ROLE_MODIFY"},
	{2312, "USER_MAC_CONFIG_CHANGE"},
	{2313, "USER_MAC_STATUS"},
	{2400, "CRYPTO_TEST_USER"},
	{2401, "CRYPTO_PARAM_CHANGE_USER"},
	{2402, "CRYPTO_LOGIN"},
	{2403, "CRYPTO_LOGOUT"},
	{2404, "CRYPTO_KEY_USER"},
	{2405, "CRYPTO_FAILURE_USER"},
	{2406, "CRYPTO_REPLAY_USER"},
	{2407, "CRYPTO_SESSION"},
	{2408, "CRYPTO_IKE_SA"},
	{2409, "CRYPTO_IPSEC_SA"},
	{2500, "VIRT_CONTROL"},
	{2501, "VIRT_RESOURCE"},
	{2502, "VIRT_MACHINE_ID"},
	{2503, "VIRT_INTEGRITY_CHECK"},
	{2504, "VIRT_CREATE"},
	{2505, "VIRT_DESTROY"},
	{2506, "VIRT_MIGRATE_IN"},
	{2507, "VIRT_MIGRATE_OUT"},
}

// laterNames are types the kernel or later libaudit releases name but
// libaudit 3.0.9 does not (DM_* are in Linux's uapi audit.h since 6.1,
// LANDLOCK_* in libaudit's audit-records.h after 3.0.9). Newer auditd writes
// these names, so the parser must know them; contid itself writes them as
// UNKNOWN[n], as auditd 3.0.9 does, so that stock 3.0.9 tools read its logs.
var laterNames = [...]typeName{
	{1338, "DM_CTRL"},
	{1339, "DM_EVENT"},
	{1423, "LANDLOCK_ACCESS"},
	{1424, "LANDLOCK_DOMAIN"},
}

// contidNames are contid's own types (spec §5). Stock tools do not know
// them; raw logs write them as UNKNOWN[n].
var contidNames = [...]typeName{
	{ContainerOp, "CONTAINER_OP"},
	{ContainerID, "CONTAINER_ID"},
	{SetCapcontid, "SET_CAPCONTID"},
	{NSInfo, "NS_INFO"},
	{NSCreate, "NS_CREATE"},
	{NSChange, "NS_CHANGE"},
	{NSDestroy, "NS_DESTROY"},
	{ContidLoss, "CONTID_LOSS"},
	{ContidForged, "CONTID_FORGED"},
}

// byName holds every known name sorted by name for ParseType. It is filled
// once at package initialisation and only read afterwards.
var byName = func() []typeName {
	all := make([]typeName, 0, len(stockNames)+len(laterNames)+len(contidNames))
	all = append(all, stockNames[:]...)
	all = append(all, laterNames[:]...)
	all = append(all, contidNames[:]...)
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	return all
}()

// stockName returns libaudit 3.0.9's name for t, or "".
func stockName(t Type) string {
	i := sort.Search(len(stockNames), func(i int) bool { return stockNames[i].t >= t })
	if i < len(stockNames) && stockNames[i].t == t {
		return stockNames[i].name
	}
	return ""
}

// Name returns the type's name: contid's own names (CONTAINER_ID, …), the
// names libaudit knows, or "" for a number nobody has named.
func (t Type) Name() string {
	if t >= ContainerOp && t <= ContidForged {
		return contidNames[t-ContainerOp].name
	}
	if n := stockName(t); n != "" {
		return n
	}
	for _, n := range laterNames {
		if n.t == t {
			return n.name
		}
	}
	return ""
}

// String returns the name, or UNKNOWN[n] for an unnamed number.
func (t Type) String() string {
	if n := t.Name(); n != "" {
		return n
	}
	return string(appendUnknown(nil, t))
}

// RawName returns the type as a raw log line names it: libaudit 3.0.9's
// name for the types it knows, else UNKNOWN[n] — the way auditd writes a
// type it has no name for. contid's own types are always UNKNOWN[n], so
// that ausearch -m 2901 finds them and no stock parser skips the line.
func (t Type) RawName() string {
	if n := stockName(t); n != "" {
		return n
	}
	return string(appendUnknown(nil, t))
}

func appendUnknown(b []byte, t Type) []byte {
	b = append(b, "UNKNOWN["...)
	b = strconv.AppendUint(b, uint64(t), 10)
	return append(b, ']')
}

// appendRawName appends t.RawName() without allocating.
func appendRawName(b []byte, t Type) []byte {
	if n := stockName(t); n != "" {
		return append(b, n...)
	}
	return appendUnknown(b, t)
}

// appendName appends t.String() without allocating.
func appendName(b []byte, t Type) []byte {
	if n := t.Name(); n != "" {
		return append(b, n...)
	}
	return appendUnknown(b, t)
}

// ErrUnknownType is wrapped by ParseType's errors.
var ErrUnknownType = errors.New("records: unknown record type")

// ParseType reads a record type as written after type=: a name known to
// Name ("SYSCALL", "CONTAINER_ID"), UNKNOWN[n] as auditd writes unnamed
// types, or a decimal number. Numbers must fit 16 bits (netlink types).
func ParseType(s string) (Type, error) {
	num := s
	if strings.HasPrefix(s, "UNKNOWN[") && strings.HasSuffix(s, "]") {
		num = s[len("UNKNOWN[") : len(s)-1]
	} else if s == "" || s[0] < '0' || s[0] > '9' {
		i := sort.Search(len(byName), func(i int) bool { return byName[i].name >= s })
		if i < len(byName) && byName[i].name == s {
			return byName[i].t, nil
		}
		return 0, fmt.Errorf("%w %q", ErrUnknownType, excerpt(s))
	}
	if !isDigits(num) {
		return 0, fmt.Errorf("%w %q", ErrUnknownType, excerpt(s))
	}
	v, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%w %q: number out of range", ErrUnknownType, excerpt(s))
	}
	return Type(v), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// excerpt bounds hostile text quoted in error messages.
func excerpt(s string) string {
	const max = 48
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
