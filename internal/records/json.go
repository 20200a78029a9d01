package records

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the record as one JSON object, without a newline:
//
//	{"type":"CONTAINER_ID","type_num":2901,"time":"2023-11-14T22:13:20.123Z",
//	 "sec":1700000000,"msec":123,"serial":42,"node":"host",
//	 "fields":{"record":1,"contid":[[4,2],[7]]},
//	 "msg":{"op":"set"},"enriched":{"UID":"root"}}
//
// type is Type.String (contid's names, UNKNOWN[n] for unnamed types); time
// is the stamp in RFC 3339, UTC, with milliseconds; node is left out when
// empty. "fields" always appears and holds the record's own fields; "msg"
// holds the InMsg fields of a user record and "enriched" the fields auditd's
// ENRICHED format appended — both left out when empty.
//
// Values:
//   - A Plain value that is a decimal integer written canonically (no sign
//     but '-', no leading zeros) and fits int64 or uint64 is a JSON number,
//     except in fields that carry hexadecimal without a 0x (arch, a0–a3,
//     per, the capability sets cap_*, fp/fi/fe/fver, pp/pi/pe/pa, old_p*).
//   - contid and old-contid, when Plain and a valid chain (see package
//     contid), are arrays of numbers: in CONTAINER_ID's own fields contid
//     is the list of chains, an array of arrays ("4,^2,7" → [[4,2],[7]]);
//     elsewhere it is one chain ("4,^2" → [4,2]). "-1" (no contid) is null.
//     Anything else stays a string.
//   - (null) is null. Everything else, enriched values included, is a
//     string: decoded bytes, invalid UTF-8 replaced by U+FFFD.
//   - Keyless tokens (AVC's "avc:", "denied", …) are values of the key "".
//   - A key that occurs more than once in one object maps to an array of
//     its values in order (a duplicate of a chain or array value nests).
//   - ENRICHED's brace groups (SADDR={ saddr_fam=inet … }) are one string,
//     "{ saddr_fam=inet … }", under their key.
//
// A record with Raw set but no Fields is parsed from Raw first; when that
// fails, the object carries the record's type and stamp, empty fields and
// "raw" with the line.
//
// Output is valid JSON for any record. It allocates only for records of
// more than 128 fields (to find duplicate keys in linear time) and to parse
// a Raw-only record.
func AppendJSON(b []byte, r *Record) []byte {
	raw := ""
	if len(r.Fields) == 0 && r.Raw != "" {
		if p, err := ParseLine(r.Raw); err == nil {
			r = &p
		} else {
			raw = r.Raw
		}
	}
	b = append(b, `{"type":"`...)
	b = appendName(b, r.Type)
	b = append(b, `","type_num":`...)
	b = strconv.AppendUint(b, uint64(r.Type), 10)
	b = append(b, `,"time":"`...)
	b = time.Unix(r.Stamp.Sec, int64(r.Stamp.Msec)*1e6).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","sec":`...)
	b = strconv.AppendInt(b, r.Stamp.Sec, 10)
	b = append(b, `,"msec":`...)
	b = strconv.AppendUint(b, uint64(r.Stamp.Msec), 10)
	b = append(b, `,"serial":`...)
	b = strconv.AppendUint(b, r.Stamp.Serial, 10)
	if r.Node != "" {
		b = append(b, `,"node":`...)
		b = appendJSONString(b, r.Node)
	}
	b = append(b, `,"fields":{`...)
	b = appendJSONGroup(b, r, groupMain)
	b = append(b, '}')
	for _, g := range [...]group{groupMsg, groupEnriched} {
		if !hasGroup(r, g) {
			continue
		}
		if g == groupMsg {
			b = append(b, `,"msg":{`...)
		} else {
			b = append(b, `,"enriched":{`...)
		}
		b = appendJSONGroup(b, r, g)
		b = append(b, '}')
	}
	if raw != "" {
		b = append(b, `,"raw":`...)
		b = appendJSONString(b, raw)
	}
	return append(b, '}')
}

type group uint8

const (
	groupMain group = iota
	groupMsg
	groupEnriched
)

func groupOf(f *Field) group {
	switch {
	case f.Enriched:
		return groupEnriched
	case f.InMsg:
		return groupMsg
	}
	return groupMain
}

func hasGroup(r *Record, g group) bool {
	for i := range r.Fields {
		if groupOf(&r.Fields[i]) == g {
			return true
		}
	}
	return false
}

// Per-field state while writing one JSON object.
const (
	stOut   = iota // not in this object
	stFirst        // first (or only) occurrence of its key: written here
	stDup          // a later occurrence: written with the first
	stBrace        // inside an ENRICHED brace group: part of its value
)

const smallObject = 128

func appendJSONGroup(b []byte, r *Record, g group) []byte {
	n := len(r.Fields)
	var stBuf [smallObject]uint8
	var nextBuf [smallObject]int32
	st, next := stBuf[:0], nextBuf[:0]
	if n <= smallObject {
		st, next = stBuf[:n], nextBuf[:n]
	} else {
		st, next = make([]uint8, n), make([]int32, n)
	}
	for i := 0; i < n; i++ {
		next[i] = -1
		st[i] = stOut
		if groupOf(&r.Fields[i]) == g {
			st[i] = stFirst
		}
	}
	if g == groupEnriched {
		for i := 0; i < n; i++ {
			f := &r.Fields[i]
			if st[i] == stFirst && f.Key != "" && f.Value == "{" {
				end := braceEnd(r.Fields, i)
				for k := i + 1; k < end; k++ {
					if st[k] == stFirst {
						st[k] = stBrace
					}
				}
				i = end - 1
			}
		}
	}
	if n <= smallObject {
		for i := 0; i < n; i++ {
			if st[i] != stFirst {
				continue
			}
			cur := i
			for j := i + 1; j < n; j++ {
				if st[j] == stFirst && r.Fields[j].Key == r.Fields[i].Key {
					next[cur] = int32(j)
					st[j] = stDup
					cur = j
				}
			}
		}
	} else {
		last := make(map[string]int32)
		for i := 0; i < n; i++ {
			if st[i] != stFirst {
				continue
			}
			k := r.Fields[i].Key
			if p, ok := last[k]; ok {
				next[p] = int32(i)
				st[i] = stDup
			}
			last[k] = int32(i)
		}
	}

	comma := false
	for i := 0; i < n; i++ {
		if st[i] != stFirst {
			continue
		}
		if comma {
			b = append(b, ',')
		}
		comma = true
		b = appendJSONString(b, r.Fields[i].Key)
		b = append(b, ':')
		if next[i] < 0 {
			b = appendJSONValue(b, r, i, g)
			continue
		}
		b = append(b, '[')
		for j := int32(i); j >= 0; j = next[j] {
			if j != int32(i) {
				b = append(b, ',')
			}
			b = appendJSONValue(b, r, int(j), g)
		}
		b = append(b, ']')
	}
	return b
}

func appendJSONValue(b []byte, r *Record, i int, g group) []byte {
	f := &r.Fields[i]
	if f.Key == "" {
		return appendJSONString(b, f.Value)
	}
	if f.Enc == Null {
		return append(b, "null"...)
	}
	if g == groupEnriched {
		if f.Value == "{" {
			b = append(b, '"')
			b = appendBraceSpan(b, r.Fields, i, appendJSONText)
			return append(b, '"')
		}
		return appendJSONString(b, f.Value)
	}
	if f.Enc != Plain {
		return appendJSONString(b, f.Value)
	}
	if f.Key == "contid" || f.Key == "old-contid" {
		list := r.Type == ContainerID && g == groupMain && f.Key == "contid"
		if f.Value == "-1" {
			return append(b, "null"...)
		}
		if chains, ok := checkChains(f.Value); ok && (list || chains == 1) {
			return appendChains(b, f.Value, list)
		}
		return appendJSONString(b, f.Value)
	}
	if !hexValued(f.Key) && isJSONInt(f.Value) {
		return append(b, f.Value...)
	}
	return appendJSONString(b, f.Value)
}

// hexValued lists fields whose bare values are hexadecimal without a 0x, so
// "20" must not become the number 20.
func hexValued(key string) bool {
	switch key {
	case "arch", "a0", "a1", "a2", "a3", "per",
		"fp", "fi", "fe", "fver", "pp", "pi", "pe", "pa",
		"old_pp", "old_pi", "old_pe", "old_pa":
		return true
	}
	return strings.HasPrefix(key, "cap_") && key != "cap_frootid"
}

// isJSONInt reports whether v is a canonical decimal integer that fits
// int64 (negative) or uint64.
func isJSONInt(v string) bool {
	neg := strings.HasPrefix(v, "-")
	d := v
	if neg {
		d = v[1:]
	}
	if !isDigits(d) || len(d) > 1 && d[0] == '0' || neg && d == "0" {
		return false
	}
	if neg {
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	}
	_, err := strconv.ParseUint(v, 10, 64)
	return err == nil
}

// checkChains validates a chain list as package contid's ParseList does
// ("4,^2,7": an element without ^ starts a chain, ^N is an ancestor; each
// element a uint64 other than 2^64−1) and counts its chains.
func checkChains(s string) (int, bool) {
	chains := 0
	for len(s) > 0 || chains == 0 {
		tok := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			tok, s = s[:i], s[i+1:]
			if s == "" {
				return 0, false
			}
		} else {
			s = ""
		}
		if strings.HasPrefix(tok, "^") {
			if chains == 0 {
				return 0, false
			}
			tok = tok[1:]
		} else {
			chains++
		}
		if !isDigits(tok) {
			return 0, false
		}
		v, err := strconv.ParseUint(tok, 10, 64)
		if err != nil || v == 1<<64-1 {
			return 0, false
		}
	}
	return chains, true
}

// appendChains writes a list checked by checkChains as [[a,b],[c]] (list)
// or [a,b].
func appendChains(b []byte, s string, list bool) []byte {
	if list {
		b = append(b, '[')
	}
	b = append(b, '[')
	first := true
	for s != "" {
		tok := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			tok, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		switch {
		case strings.HasPrefix(tok, "^"):
			tok = tok[1:]
			b = append(b, ',')
		case !first:
			b = append(b, "],["...)
		}
		first = false
		v, _ := strconv.ParseUint(tok, 10, 64)
		b = strconv.AppendUint(b, v, 10)
	}
	b = append(b, ']')
	if list {
		b = append(b, ']')
	}
	return b
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONText(b, s)
	return append(b, '"')
}

// appendJSONText escapes s for the inside of a JSON string: quotes,
// backslashes, control bytes, U+2028/U+2029; invalid UTF-8 becomes U+FFFD.
func appendJSONText(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, upperHex[r&0xf])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}
