package auditnl

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Rule is struct audit_rule_data (linux/audit.h): one kernel audit rule as
// AUDIT_ADD_RULE, AUDIT_DEL_RULE and AUDIT_LIST_RULES carry it.
type Rule struct {
	Flags  uint32 // the list: AUDIT_FILTER_EXIT, _USER, _EXCLUDE, … (with AUDIT_FILTER_PREPEND when sent by -A)
	Action uint32 // AUDIT_NEVER or AUDIT_ALWAYS
	// Mask has a bit per syscall number; the top bits are syscall classes
	// the kernel expands when it takes the rule.
	Mask   [ruleMaskWords]uint32
	Fields []RuleField
	// Buf holds the string values (paths, keys, labels) back to back; a
	// string field's Value is its length.
	Buf []byte
}

// RuleField is one condition of a Rule: Field (AUDIT_MSGTYPE, AUDIT_UID,
// …) compared by Op (AUDIT_EQUAL, AUDIT_BIT_MASK, …) with Value.
type RuleField struct {
	Field, Op, Value uint32
}

const (
	ruleMaskWords = 64 // AUDIT_BITMASK_SIZE
	ruleMaxFields = 64 // AUDIT_MAX_FIELDS
	// ruleHeaderLen is struct audit_rule_data without its buffer.
	ruleHeaderLen = 3*4 + ruleMaskWords*4 + 3*ruleMaxFields*4 + 4
	// ruleBufMax bounds Buf: at most 64 strings of PATH_MAX.
	ruleBufMax = ruleMaxFields * 4096
)

// IsStringField reports whether the kernel reads field f's value as the
// length of a string in the rule's buffer.
func IsStringField(f uint32) bool {
	switch f {
	case unix.AUDIT_SUBJ_USER, unix.AUDIT_SUBJ_ROLE, unix.AUDIT_SUBJ_TYPE, unix.AUDIT_SUBJ_SEN, unix.AUDIT_SUBJ_CLR,
		unix.AUDIT_OBJ_USER, unix.AUDIT_OBJ_ROLE, unix.AUDIT_OBJ_TYPE, unix.AUDIT_OBJ_LEV_LOW, unix.AUDIT_OBJ_LEV_HIGH,
		unix.AUDIT_WATCH, unix.AUDIT_DIR, unix.AUDIT_FILTERKEY, unix.AUDIT_EXE:
		return true
	}
	return false
}

// ParseRule decodes struct audit_rule_data (the payload of AUDIT_LIST_RULES
// replies and of AUDIT_ADD_RULE/AUDIT_DEL_RULE requests). Padding after
// the buffer is ignored. It checks what the kernel checks of the layout:
// at most 64 fields, a buffer as long as its string fields say.
func ParseRule(data []byte) (Rule, error) {
	if len(data) < ruleHeaderLen {
		return Rule{}, fmt.Errorf("%w: audit_rule_data of %d bytes, want at least %d", ErrTruncated, len(data), ruleHeaderLen)
	}
	ne := binary.NativeEndian
	u := func(i int) uint32 { return ne.Uint32(data[4*i:]) }
	r := Rule{Flags: u(0), Action: u(1)}
	n := u(2)
	if n > ruleMaxFields {
		return Rule{}, fmt.Errorf("%w: audit rule with %d fields, at most %d", ErrMalformed, n, ruleMaxFields)
	}
	for i := range r.Mask {
		r.Mask[i] = u(3 + i)
	}
	fields, values, flags := 3+ruleMaskWords, 3+ruleMaskWords+ruleMaxFields, 3+ruleMaskWords+2*ruleMaxFields
	var strs uint64
	r.Fields = make([]RuleField, n)
	for i := range r.Fields {
		f := RuleField{Field: u(fields + i), Value: u(values + i), Op: u(flags + i)}
		if IsStringField(f.Field) {
			strs += uint64(f.Value)
		}
		r.Fields[i] = f
	}
	buflen := uint64(u(3 + ruleMaskWords + 3*ruleMaxFields))
	if buflen > uint64(len(data)-ruleHeaderLen) || buflen > ruleBufMax {
		return Rule{}, fmt.Errorf("%w: audit rule buffer of %d bytes, %d left", ErrTruncated, buflen, len(data)-ruleHeaderLen)
	}
	if strs != buflen {
		return Rule{}, fmt.Errorf("%w: audit rule strings take %d bytes, its buffer has %d", ErrMalformed, strs, buflen)
	}
	r.Buf = bytes.Clone(data[ruleHeaderLen : ruleHeaderLen+buflen])
	return r, nil
}

// Marshal encodes r as struct audit_rule_data, padded to 4 bytes. It is
// the inverse of ParseRule for every rule ParseRule returns.
func (r Rule) Marshal() []byte {
	ne := binary.NativeEndian
	b := make([]byte, 0, ruleHeaderLen+len(r.Buf)+3)
	b = ne.AppendUint32(b, r.Flags)
	b = ne.AppendUint32(b, r.Action)
	b = ne.AppendUint32(b, uint32(len(r.Fields)))
	for _, m := range r.Mask {
		b = ne.AppendUint32(b, m)
	}
	for _, get := range []func(RuleField) uint32{
		func(f RuleField) uint32 { return f.Field },
		func(f RuleField) uint32 { return f.Value },
		func(f RuleField) uint32 { return f.Op },
	} {
		for i := range ruleMaxFields {
			var v uint32
			if i < len(r.Fields) {
				v = get(r.Fields[i])
			}
			b = ne.AppendUint32(b, v)
		}
	}
	b = ne.AppendUint32(b, uint32(len(r.Buf)))
	b = append(b, r.Buf...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Strings returns the string values of r's fields, in field order.
func (r Rule) Strings() []string {
	var out []string
	off := uint64(0)
	for _, f := range r.Fields {
		if !IsStringField(f.Field) {
			continue
		}
		end := min(off+uint64(f.Value), uint64(len(r.Buf)))
		out = append(out, string(r.Buf[off:end]))
		off = end
	}
	return out
}

// List is the filter list of r, without AUDIT_FILTER_PREPEND.
func (r Rule) List() uint32 { return r.Flags &^ unix.AUDIT_FILTER_PREPEND }

// Equal reports whether the kernel takes a and b for the same rule: the
// same list, action, syscalls, fields and strings. Prepending (-A) does not
// make a rule different: the kernel refuses a second copy either way.
func (a Rule) Equal(b Rule) bool {
	a.Flags, b.Flags = a.List(), b.List()
	return bytes.Equal(a.Marshal(), b.Marshal())
}
