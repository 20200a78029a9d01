package records

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AppendRaw appends the record as one auditd log line, without the trailing
// newline, and returns the extended buffer.
//
// A record with Raw set is written as Raw, unchanged. Otherwise the line is
//
//	[node=NODE ]type=RAWNAME msg=audit(SEC.MSEC:SERIAL): k=v k=v
//
// with RAWNAME from Type.RawName (UNKNOWN[n] for contid's own types), MSEC
// zero-padded to three digits (Stamp.Msec must be below 1000) and fields
// separated by single spaces. A field without a key is written as its bare
// value. A run of InMsg fields is written as one msg='k=v k=v' (only the
// first run: later InMsg fields are written as ordinary fields) and
// Enriched fields come last, after the 0x1D separator, as auditd writes
// them.
//
// Values by encoding:
//   - Plain: as is. A Plain value that would not parse back as itself — one
//     holding a space, a control byte or DEL, starting with a quote, equal
//     to (null), looking like hex in a HexField, or (keyless) holding '=' —
//     is written as upper-case hex instead, so a buggy caller can never
//     inject a field, a line or an ENRICHED part. Empty values are written
//     as k=. Other bytes, UTF-8 included, are written as they are.
//   - Untrusted: as the kernel's audit_log_untrustedstring: "value" when
//     every byte is printable ASCII other than '"' (empty gives ""), else
//     upper-case hex of all bytes. Only HexField fields decode back from hex.
//   - Quoted: "value"; hex when the value holds '"', a control byte or DEL.
//   - Hex: upper-case hex of the value's bytes.
//   - Null: (null), whatever Value holds.
//   - Single: 'value'; the bytes NUL, newline, 0x1D (and ' in a key other
//     than msg) are written as '?'.
//
// Keys are written with bytes below 0x21, DEL and '=' replaced by '_'. After
// a msg='…' the byte ' cannot occur any more in the line (ausearch and the
// parser end msg at the last quote): later values holding it are written as
// hex and such keys get '_'. A node name holding a space, a control byte or
// DEL is written as hex.
func AppendRaw(b []byte, r *Record) []byte {
	if r.Raw != "" {
		return append(b, r.Raw...)
	}
	if r.Node != "" {
		b = append(b, "node="...)
		if !plainSafe(r.Node, wctx{}) {
			b = appendHex(b, r.Node)
		} else {
			b = append(b, r.Node...)
		}
		b = append(b, ' ')
	}
	b = append(b, "type="...)
	b = appendRawName(b, r.Type)
	b = append(b, " msg=audit("...)
	b = appendStamp(b, r.Stamp)
	b = append(b, "):"...)

	var c wctx
	inMsg, msgFirst := false, false
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Enriched || skipped(f) {
			continue
		}
		if f.InMsg && !c.afterMsg {
			if !inMsg {
				b = append(b, " msg='"...)
				inMsg, msgFirst = true, true
				c.inner = true
			}
			if !msgFirst {
				b = append(b, ' ')
			}
			msgFirst = false
			b = appendRawField(b, r.Type, f, c)
			continue
		}
		if inMsg {
			b = append(b, '\'')
			inMsg, c.inner, c.afterMsg = false, false, true
		}
		b = append(b, ' ')
		b = appendRawField(b, r.Type, f, c)
		if f.Enc == Single && f.Key == "msg" && !f.InMsg {
			c.afterMsg = true
		}
	}
	if inMsg {
		b = append(b, '\'')
	}

	c = wctx{enriched: true}
	first := true
	for i := range r.Fields {
		f := &r.Fields[i]
		if !f.Enriched || skipped(f) {
			continue
		}
		if first {
			b = append(b, enrichSep)
			first = false
		} else {
			b = append(b, ' ')
		}
		b = appendRawField(b, r.Type, f, c)
	}
	return b
}

// skipped reports fields that write nothing: a keyless empty value.
func skipped(f *Field) bool { return f.Key == "" && f.Value == "" }

func appendStamp(b []byte, s Stamp) []byte {
	b = strconv.AppendInt(b, s.Sec, 10)
	b = append(b, '.')
	if s.Msec < 100 {
		b = append(b, '0')
	}
	if s.Msec < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, uint64(s.Msec), 10)
	b = append(b, ':')
	return strconv.AppendUint(b, s.Serial, 10)
}

// wctx is where in the line a field is written.
type wctx struct {
	inner    bool // inside msg='…': single quotes are plain bytes
	afterMsg bool // a msg='…' was written: ' may no longer appear
	enriched bool // after the 0x1D separator
}

func appendRawField(b []byte, t Type, f *Field, c wctx) []byte {
	v := f.Value
	if f.Key == "" {
		if plainSafe(v, c) && strings.IndexByte(v, '=') <= 0 {
			return append(b, v...)
		}
		return appendHex(b, v)
	}
	b = appendKey(b, f.Key, c)
	b = append(b, '=')
	enc := f.Enc
	if enc == Single && c.inner {
		enc = Plain
	}
	switch enc {
	case Plain:
		if plainSafe(v, c) && v != "(null)" && !(v != "" && (v[0] == '"' || v[0] == '\'' && !c.inner)) &&
			!(HexField(t, f.Key) && looksHex(v)) {
			return append(b, v...)
		}
		return appendHex(b, v)
	case Quoted:
		if strings.IndexByte(v, '"') >= 0 || hasControl(v) || c.afterMsg && strings.IndexByte(v, '\'') >= 0 {
			return appendHex(b, v)
		}
		return appendQuoted(b, v)
	case Hex:
		return appendHex(b, v)
	case Null:
		return append(b, "(null)"...)
	case Single:
		if c.afterMsg {
			return appendHex(b, v)
		}
		b = append(b, '\'')
		for i := 0; i < len(v); i++ {
			ch := v[i]
			if ch == 0 || ch == '\n' || ch == enrichSep || ch == '\'' && (f.Key != "msg" || c.enriched) {
				ch = '?'
			}
			b = append(b, ch)
		}
		return append(b, '\'')
	default: // Untrusted, and any encoding this version does not know
		if needsKernelHex(v) || c.afterMsg && strings.IndexByte(v, '\'') >= 0 {
			return appendHex(b, v)
		}
		return appendQuoted(b, v)
	}
}

// plainSafe reports whether v has no byte that ends or breaks a bare token.
func plainSafe(v string, c wctx) bool {
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch < 0x21 || ch == 0x7f || ch == '\'' && c.afterMsg {
			return false
		}
	}
	return true
}

func appendQuoted(b []byte, v string) []byte {
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

func appendKey(b []byte, k string, c wctx) []byte {
	if plainSafe(k, c) && strings.IndexByte(k, '=') < 0 {
		return append(b, k...)
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if ch < 0x21 || ch == 0x7f || ch == '=' || ch == '\'' && c.afterMsg {
			ch = '_'
		}
		b = append(b, ch)
	}
	return b
}

// AppendInterpreted appends the record as `ausearch -i` shows it, one line
// without the trailing newline:
//
//	[node=NODE ]type=NAME msg=audit(MM/DD/YYYY HH:MM:SS.mmm:SERIAL) : k=v k=v
//
// in loc (UTC when nil). The date is ausearch's %x in an en_US locale;
// ausearch in the C locale prints a two-digit year. NAME is Type.String, so
// contid's types show their names. Values are decoded (hex and quotes
// removed, (null) kept) and printed as text; bytes that are not printable
// UTF-8 and the backslash are escaped as \ooo and \\, so the output stays
// one line and cannot drive a terminal. Spaces are printed as they are, as
// ausearch does. InMsg fields are shown as msg='k=v …'. Two interpretations
// are built in, both as ausearch: the NULs between proctitle's arguments are
// shown as spaces, and 4294967295 in auid, ses (and oauid, oses, old-auid,
// old-ses, sauid) as "unset". Nothing that needs the host (user names,
// syscall tables) is looked up.
//
// Enriched fields are not printed as such; like ausearch on an ENRICHED
// log, a field whose interpretation auditd appended (uid=0 with UID="root",
// syscall=59 with SYSCALL=execve, saddr= with SADDR={ … }) shows the
// interpretation instead of the number.
//
// A record with Raw set but no Fields is parsed from Raw first; when that
// fails, Raw itself is printed, escaped.
func AppendInterpreted(b []byte, r *Record, loc *time.Location) []byte {
	if len(r.Fields) == 0 && r.Raw != "" {
		p, err := ParseLine(r.Raw)
		if err != nil {
			return appendPrintable(b, r.Raw)
		}
		r = &p
	}
	if loc == nil {
		loc = time.UTC
	}
	if r.Node != "" {
		b = append(b, "node="...)
		b = appendPrintable(b, r.Node)
		b = append(b, ' ')
	}
	b = append(b, "type="...)
	b = appendName(b, r.Type)
	b = append(b, " msg=audit("...)
	tm := time.Unix(r.Stamp.Sec, int64(r.Stamp.Msec)*1e6).In(loc)
	y, mo, d := tm.Date()
	h, mi, s := tm.Clock()
	b = appendPad(b, int(mo), 2)
	b = append(b, '/')
	b = appendPad(b, d, 2)
	b = append(b, '/')
	b = appendPad(b, y, 4)
	b = append(b, ' ')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	b = append(b, '.')
	b = appendPad(b, int(r.Stamp.Msec), 3)
	b = append(b, ':')
	b = strconv.AppendUint(b, r.Stamp.Serial, 10)
	b = append(b, ") :"...)

	inMsg := false
	first := false
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Enriched || skipped(f) {
			continue
		}
		switch {
		case f.InMsg && !inMsg:
			b = append(b, " msg='"...)
			inMsg, first = true, true
		case !f.InMsg && inMsg:
			b = append(b, '\'')
			inMsg = false
		}
		if !first {
			b = append(b, ' ')
		}
		first = false
		b = appendInterpretedField(b, r.Fields, f)
	}
	if inMsg {
		b = append(b, '\'')
	}
	return b
}

func appendInterpretedField(b []byte, all []Field, f *Field) []byte {
	if f.Key == "" {
		return appendPrintable(b, f.Value)
	}
	b = appendPrintable(b, f.Key)
	b = append(b, '=')
	if j := enrichedFor(all, f.Key); j >= 0 {
		if all[j].Value == "{" {
			return appendBraceSpan(b, all, j, appendPrintable)
		}
		return appendPrintable(b, all[j].Value)
	}
	switch {
	case f.Enc == Null:
		return append(b, "(null)"...)
	case f.Enc == Single:
		b = append(b, '\'')
		b = appendPrintable(b, f.Value)
		return append(b, '\'')
	case f.Key == "proctitle":
		// The kernel joins the arguments with NULs; ausearch shows spaces.
		for v := f.Value; v != ""; {
			i := strings.IndexByte(v, 0)
			if i < 0 {
				return appendPrintable(b, v)
			}
			b = append(appendPrintable(b, v[:i]), ' ')
			v = v[i+1:]
		}
		return b
	case f.Value == "4294967295" && unsetID(f.Key):
		return append(b, "unset"...)
	}
	return appendPrintable(b, f.Value)
}

// unsetID lists the login-uid and session fields in which (u32)-1 means
// unset, printed "unset" as ausearch does.
func unsetID(key string) bool {
	switch key {
	case "auid", "ses", "oauid", "oses", "old-auid", "old-ses", "sauid":
		return true
	}
	return false
}

// enrichedFor returns the index of the Enriched field interpreting key
// (auditd upper-cases the field name: uid → UID), or -1.
func enrichedFor(all []Field, key string) int {
	for j := range all {
		if all[j].Enriched && all[j].Key != "" && strings.EqualFold(all[j].Key, key) {
			return j
		}
	}
	return -1
}

// braceEnd returns the index after the keyless "}" closing the brace group
// auditd writes for SADDR={ saddr_fam=inet laddr=… }, which starts at all[j]
// (value "{"); without a closing brace the group ends with the fields.
func braceEnd(all []Field, j int) int {
	for k := j + 1; k < len(all); k++ {
		if !all[k].Enriched {
			continue
		}
		if all[k].Key == "" && all[k].Value == "}" {
			return k + 1
		}
	}
	return len(all)
}

// appendBraceSpan writes the brace group at all[j] as its text, "{ a=b … }",
// with esc escaping each piece.
func appendBraceSpan(b []byte, all []Field, j int, esc func([]byte, string) []byte) []byte {
	b = append(b, '{')
	end := braceEnd(all, j)
	for k := j + 1; k < end; k++ {
		f := &all[k]
		if !f.Enriched {
			continue
		}
		b = append(b, ' ')
		if f.Key != "" {
			b = esc(b, f.Key)
			b = append(b, '=')
		}
		b = esc(b, f.Value)
	}
	return b
}

func appendPad(b []byte, v, width int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	digits := 1
	for n := v; n >= 10; n /= 10 {
		digits++
	}
	for ; digits < width; digits++ {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(v), 10)
}

// appendPrintable writes s with every byte that is not part of a printable
// UTF-8 character, and the backslash, escaped (\ooo, \\).
func appendPrintable(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			if c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if c >= utf8.RuneSelf && r != utf8.RuneError && unicode.IsPrint(r) {
			b = append(b, s[i:i+n]...)
			i += n
			continue
		}
		for k := 0; k < n; k++ {
			x := s[i+k]
			b = append(b, '\\', '0'+x>>6, '0'+x>>3&7, '0'+x&7)
		}
		i += n
	}
	return b
}
