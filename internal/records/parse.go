package records

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLineLen bounds the lines ParseLine accepts and the payloads
// ParseMessage accepts. auditd's own lines stay below 9,225 bytes
// (MAX_AUDIT_MESSAGE_LENGTH 8970 plus a host name, ENRICHED included); the
// bound is set well above that for contid's own records (a CONTAINER_ID of a
// NETFILTER_PKT lists every container of a network namespace) while keeping
// the work on hostile input bounded.
const MaxLineLen = 64 << 10

// Errors of the parser. Every parse error wraps one of them.
var (
	// ErrSyntax is a line that is not in the auditd format.
	ErrSyntax = errors.New("records: malformed record")
	// ErrTooLong is a line longer than MaxLineLen.
	ErrTooLong = errors.New("records: line longer than MaxLineLen")
)

type syntaxError struct {
	msg   string
	cause error // an extra sentinel, such as ErrUnknownType
}

func (e *syntaxError) Error() string { return "records: " + e.msg }

func (e *syntaxError) Is(target error) bool { return target == ErrSyntax }

func (e *syntaxError) Unwrap() error { return e.cause }

func syntaxf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...)}
}

// ParseLine parses one line of an auditd log:
//
//	[node=NODE ]type=NAME msg=audit(SEC.MSEC:SERIAL): k=v …[0x1D K=v …]
//
// NAME is anything ParseType accepts. A trailing "\n", "\r\n" or "\r" is
// removed; Raw is the rest of the line, unchanged. The line must not hold
// NUL or another newline and may be at most MaxLineLen bytes.
//
// Fields are separated by spaces (runs of spaces count as one). A field is
//   - key="value": Quoted, up to the next '"';
//   - key=(null): Null, Value "(null)";
//   - key=HEX in a HexField: Hex, Value the decoded bytes (see HexField);
//   - key=value: Plain, up to the next space (may be empty);
//   - msg='…' (user records): the text up to the last ' before the ENRICHED
//     separator, as the kernel does not escape it. It is parsed again as
//     fields, which are flattened in its place and marked InMsg; the outer
//     msg field is not kept. When that text is not a list of fields (no
//     key=value in it, an unterminated quote, a control byte in a bare
//     token), msg is kept as one Single field instead, its text unchanged.
//     Inside msg, single quotes are ordinary bytes.
//   - other key='…': Single, up to the next ';
//   - a token without '=' (or starting with '='), as "avc:" or "denied" of
//     an AVC: a field with an empty Key and the token as Value.
//
// After a 0x1D byte come the fields auditd's ENRICHED format adds; they
// are parsed the same way (msg is not special there) and marked Enriched.
// A line may hold one 0x1D only.
//
// Keys, bare tokens and double-quoted values may not hold control bytes or
// DEL (the kernel hex-encodes such strings); single-quoted text, which the
// kernel copies from user space unescaped, may hold anything but NUL and
// newline. A quoted value must be followed by a space or the end of its
// part.
func ParseLine(line string) (Record, error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	return parseLine(line)
}

func parseLine(line string) (Record, error) {
	if len(line) > MaxLineLen {
		return Record{}, fmt.Errorf("%w (%d bytes)", ErrTooLong, len(line))
	}
	if i := strings.IndexByte(line, 0); i >= 0 {
		return Record{}, syntaxf("line holds a NUL byte at offset %d", i)
	}
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		return Record{}, syntaxf("line holds a newline at offset %d", i)
	}
	r := Record{Raw: line}
	s := line
	if strings.HasPrefix(s, "node=") {
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			return Record{}, syntaxf("line has a node= but no record")
		}
		r.Node = s[len("node="):sp]
		if hasControl(r.Node) {
			return Record{}, syntaxf("node name holds a control byte")
		}
		s = s[sp+1:]
	}
	if !strings.HasPrefix(s, "type=") {
		return Record{}, syntaxf("line has no type= (starts %q)", excerpt(line))
	}
	s = s[len("type="):]
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		return Record{}, syntaxf("line has no msg=audit(...) stamp")
	}
	t, err := ParseType(s[:sp])
	if err != nil {
		return Record{}, &syntaxError{msg: fmt.Sprintf("unknown record type %q", excerpt(s[:sp])), cause: ErrUnknownType}
	}
	r.Type = t
	s = s[sp+1:]
	if !strings.HasPrefix(s, "msg=audit(") {
		return Record{}, syntaxf("line has no msg=audit(...) stamp")
	}
	s = s[len("msg=audit("):]
	r.Stamp, s, err = parseStamp(s)
	if err != nil {
		return Record{}, err
	}
	if s != "" && s[0] != ' ' && s[0] != enrichSep {
		return Record{}, syntaxf("text right after the stamp: %q", excerpt(s))
	}
	if r.Fields, err = parseBody(t, s); err != nil {
		return Record{}, err
	}
	return r, nil
}

// parseStamp reads SEC.MSEC:SERIAL): and returns what follows.
func parseStamp(s string) (Stamp, string, error) {
	var st Stamp
	bad := func(what string) (Stamp, string, error) {
		return Stamp{}, "", syntaxf("bad msg=audit(...) stamp: %s", what)
	}
	i := digitsLen(s)
	if i == 0 || i >= len(s) || s[i] != '.' {
		return bad("seconds")
	}
	sec, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return bad("seconds out of range")
	}
	st.Sec = sec
	s = s[i+1:]
	i = digitsLen(s)
	if i == 0 || i > 3 || i >= len(s) || s[i] != ':' {
		return bad("milliseconds")
	}
	ms, _ := strconv.ParseUint(s[:i], 10, 32)
	st.Msec = uint32(ms)
	s = s[i+1:]
	i = digitsLen(s)
	if i == 0 || i >= len(s) || s[i] != ')' {
		return bad("serial")
	}
	if st.Serial, err = strconv.ParseUint(s[:i], 10, 64); err != nil {
		return bad("serial out of range")
	}
	s = s[i+1:]
	if s == "" || s[0] != ':' {
		return bad("no ':' after ')'")
	}
	return st, s[1:], nil
}

func digitsLen(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			return true
		}
	}
	return false
}

// parseBody parses the fields after the stamp, the ENRICHED part included.
func parseBody(t Type, body string) ([]Field, error) {
	main, enr := body, ""
	if i := strings.IndexByte(body, enrichSep); i >= 0 {
		main, enr = body[:i], body[i+1:]
		if strings.IndexByte(enr, enrichSep) >= 0 {
			return nil, syntaxf("more than one ENRICHED separator (0x1D)")
		}
	}
	if strings.TrimLeft(main, " ") == "" && strings.TrimLeft(enr, " ") == "" {
		return nil, nil
	}
	// One allocation for the fields: a field needs at least one space.
	fields := make([]Field, 0, strings.Count(body, " ")+2)
	fields, err := parseFields(fields, t, main, ctxMain)
	if err != nil {
		return nil, err
	}
	return parseFields(fields, t, enr, ctxEnriched)
}

type pctx uint8

const (
	ctxMain     pctx = iota // the record's own fields
	ctxMsg                  // inside msg='…'
	ctxEnriched             // after 0x1D
)

// wordEnd returns the index of the first space in s from i, or len(s).
func wordEnd(s string, i int) int {
	if end := strings.IndexByte(s[i:], ' '); end >= 0 {
		return i + end
	}
	return len(s)
}

func parseFields(dst []Field, t Type, s string, c pctx) ([]Field, error) {
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		start := i
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '=' {
			j++
		}
		if j == len(s) || s[j] == ' ' || j == start {
			end := wordEnd(s, start)
			tok := s[start:end]
			if hasControl(tok) {
				return dst, syntaxf("control byte in %q", excerpt(tok))
			}
			dst = append(dst, Field{Value: tok, Enriched: c == ctxEnriched, InMsg: c == ctxMsg})
			i = end
			continue
		}
		key := s[start:j]
		if hasControl(key) {
			return dst, syntaxf("control byte in key %q", excerpt(key))
		}
		v := j + 1
		f := Field{Key: key, Enriched: c == ctxEnriched, InMsg: c == ctxMsg}
		switch {
		case v < len(s) && s[v] == '"':
			q := strings.IndexByte(s[v+1:], '"')
			if q < 0 {
				return dst, syntaxf("field %q: unterminated double quote", excerpt(key))
			}
			f.Value, f.Enc = s[v+1:v+1+q], Quoted
			if hasControl(f.Value) {
				return dst, syntaxf("field %q: control byte in quoted value", excerpt(key))
			}
			i = v + 2 + q
		case v < len(s) && s[v] == '\'' && c != ctxMsg:
			var q int
			if c == ctxMain && key == "msg" {
				q = strings.LastIndexByte(s[v+1:], '\'')
			} else {
				q = strings.IndexByte(s[v+1:], '\'')
			}
			if q < 0 {
				return dst, syntaxf("field %q: unterminated single quote", excerpt(key))
			}
			f.Value, f.Enc = s[v+1:v+1+q], Single
			i = v + 2 + q
			if i < len(s) && s[i] != ' ' {
				return dst, syntaxf("field %q: text right after the closing quote", excerpt(key))
			}
			if c == ctxMain && key == "msg" {
				n := len(dst)
				var err error
				dst, err = parseFields(dst, t, f.Value, ctxMsg)
				if err == nil && hasKeyed(dst[n:]) {
					continue
				}
				dst = dst[:n] // not a list of fields: keep the text
			}
			dst = append(dst, f)
			continue
		default:
			end := wordEnd(s, v)
			val := s[v:end]
			if hasControl(val) {
				return dst, syntaxf("field %q: control byte in value", excerpt(key))
			}
			switch {
			case val == "(null)":
				f.Value, f.Enc = val, Null
			case HexField(t, key) && looksHex(val):
				f.Value, f.Enc = decodeHex(val), Hex
			default:
				f.Value = val
			}
			i = end
		}
		if i < len(s) && s[i] != ' ' {
			return dst, syntaxf("field %q: text right after the closing quote", excerpt(key))
		}
		dst = append(dst, f)
	}
	return dst, nil
}

// ParseMessage parses a record as the kernel sends it over netlink: the
// message type t and the payload "audit(SEC.MSEC:SERIAL): fields". Raw is
// set to the line auditd 3.0.9 writes for it with log_format=RAW and no
// node name (format_raw in auditd-event.c): "type=" RAWNAME " msg=" and the
// payload up to its first NUL, every newline turned into a space, one
// trailing space removed. (auditd also truncates lines beyond 8,937 bytes;
// ParseMessage refuses payloads beyond MaxLineLen instead.) The rest is as
// ParseLine.
func ParseMessage(t Type, payload []byte) (Record, error) {
	if i := bytes.IndexByte(payload, 0); i >= 0 {
		payload = payload[:i]
	}
	if len(payload) > MaxLineLen {
		return Record{}, fmt.Errorf("%w (payload of %d bytes)", ErrTooLong, len(payload))
	}
	if n := len(payload); n > 0 && (payload[n-1] == '\n' || payload[n-1] == ' ') {
		payload = payload[:n-1] // auditd trims the one trailing space a newline became
	}
	var sb strings.Builder // one allocation: String does not copy
	var name [32]byte      // longer than any type name
	sb.Grow(len("type= msg=") + len(name) + len(payload))
	sb.WriteString("type=")
	sb.Write(appendRawName(name[:0], t))
	sb.WriteString(" msg=")
	for len(payload) > 0 {
		i := bytes.IndexByte(payload, '\n')
		if i < 0 {
			sb.Write(payload)
			break
		}
		sb.Write(payload[:i])
		sb.WriteByte(' ')
		payload = payload[i+1:]
	}
	return parseLine(sb.String())
}

func hasKeyed(fs []Field) bool {
	for i := range fs {
		if fs[i].Key != "" {
			return true
		}
	}
	return false
}
