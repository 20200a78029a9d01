package records

// This file holds the rules shared by the formatter and the parser: which
// fields carry hex-encoded strings, and which bytes a value may hold when it
// is written bare or in quotes. The formatter and the parser must agree on
// them for the round trip the package promises.

// HexField reports whether key, in a record of type t, holds a string the
// kernel or libaudit writes hex-encoded when it is not printable (the
// kernel's audit_log_untrustedstring, libaudit's audit_encode_nv_string).
// The parser decodes a bare value of such a field when it is non-empty, of
// even length and made only of 0-9 and A-F (the kernel writes upper-case
// hex); every other bare value stays as written. The rule is by field name,
// as auparse's, because the format does not mark encoded values: a bare
// value of another field ("a0=7f1c" of SYSCALL, saddr=) keeps its text.
//
// The fields are comm, exe, cwd, name, path, proctitle, key, data, ocomm,
// dev, acct, cmd, vm, profile and target, and EXECVE's argument fields a<N>
// and a<N>[<M>].
func HexField(t Type, key string) bool {
	switch key {
	case "comm", "exe", "cwd", "name", "path", "proctitle", "key", "data",
		"ocomm", "dev", "acct", "cmd", "vm", "profile", "target":
		return true
	}
	return t == execveType && isExecveArg(key)
}

const execveType Type = 1309

// isExecveArg matches a<N> and a<N>[<M>] (not a<N>_len, argc).
func isExecveArg(key string) bool {
	if len(key) < 2 || key[0] != 'a' {
		return false
	}
	i := 1
	for i < len(key) && key[i] >= '0' && key[i] <= '9' {
		i++
	}
	if i == 1 {
		return false
	}
	if i == len(key) {
		return true
	}
	if key[i] != '[' || key[len(key)-1] != ']' || i+2 >= len(key) {
		return false
	}
	return isDigits(key[i+1 : len(key)-1])
}

// looksHex reports whether v is non-empty, of even length and upper-case hex.
func looksHex(v string) bool {
	if v == "" || len(v)%2 != 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// decodeHex decodes an upper-case hex string checked by looksHex.
func decodeHex(v string) string {
	out := make([]byte, len(v)/2)
	for i := range out {
		out[i] = unhex(v[2*i])<<4 | unhex(v[2*i+1])
	}
	return string(out)
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

const upperHex = "0123456789ABCDEF"

func appendHex(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		b = append(b, upperHex[v[i]>>4], upperHex[v[i]&0xf])
	}
	return b
}

// isControl is a byte the parser refuses in bare tokens and keys: C0
// controls and DEL. (The kernel never writes them bare; it hex-encodes.)
func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

// needsKernelHex is the kernel's audit_string_contains_control: a string
// with '"', a byte below 0x21 or above 0x7e is written as hex.
func needsKernelHex(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c < 0x21 || c > 0x7e {
			return true
		}
	}
	return false
}

// Separators of the format.
const (
	// enrichSep is AUDIT_INTERP_SEPARATOR: auditd's log_format=ENRICHED
	// appends interpreted fields after it.
	enrichSep = 0x1d
)
