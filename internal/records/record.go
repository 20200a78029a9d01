// Package records holds audit records in the auditd text format: their
// types, their fields, formatting (raw, interpreted, JSON) and parsing of
// lines as the kernel and auditd write them.
//
// Contract:
//
//   - Everything here is pure: no I/O, no clock, no package-level mutable
//     state. All functions are safe for concurrent use; a Record is a value
//     that callers must not mutate while another goroutine formats it.
//   - Records taken from the kernel or from auditd keep their original text
//     in Raw and AppendRaw writes it back byte for byte; contid's own records
//     are built from Fields.
//   - AppendRaw never lets a field break the line: whatever the bytes of
//     keys and values, the output is one line in which every field written
//     reads back as one field with the same key (unsafe key bytes become
//     '_'). It cannot forge a field, start a new line or fake the ENRICHED
//     part. Values read back unchanged except where the format cannot carry
//     them: a value written as hex in a field that is not a HexField reads
//     back as its hex text (see AppendRaw for the encodings).
//   - The Append* formatters do not allocate when the destination has room,
//     with two exceptions: AppendJSON allocates for records of more than 128
//     fields (to find duplicate keys in linear time), and AppendInterpreted
//     and AppendJSON parse a record that has Raw but no Fields first.
//   - ParseLine and ParseMessage accept untrusted bytes: they never panic,
//     do work linear in the input (bounded by MaxLineLen), and return an
//     error wrapping ErrSyntax or ErrTooLong for input they refuse. Whatever
//     they accept, AppendRaw writes back exactly, and formatting the parsed
//     Fields again (Raw cleared) and parsing the result gives the same
//     fields (checked by FuzzParseLine).
//   - Nothing here drops data silently: a line that cannot be parsed is an
//     error for the caller to count or keep, never a partial record.
package records

// Type is an audit record type number (the netlink message type).
type Type uint16

// contid's record types (spec §5). They lie in the user-space range that
// libaudit keeps for future use, so the kernel accepts them as user records
// and stock tools print them as UNKNOWN[n].
const (
	ContainerOp  Type = 2900
	ContainerID  Type = 2901
	SetCapcontid Type = 2902
	NSInfo       Type = 2903
	NSCreate     Type = 2904
	NSChange     Type = 2905
	NSDestroy    Type = 2906
	ContidLoss   Type = 2907
	// ContidForged is what contid writes in place of a record of one of
	// its types (2900–2908) that contid did not send (see MarkForged). It
	// never enters the kernel's stream from contid.
	ContidForged Type = 2908
)

// Stamp is an event's identity as in msg=audit(SEC.MSEC:SERIAL). Records of
// one event share the stamp.
type Stamp struct {
	Sec    int64
	Msec   uint32 // 0–999
	Serial uint64 // kernel serials are 32-bit; contid's own start at OwnSerialBase
}

// Kernel record types the pipeline treats specially.
const (
	Syscall      Type = 1300
	ObjPID       Type = 1318
	EOE          Type = 1320
	NetfilterPkt Type = 1324
)

// OwnSerialBase is the first serial of contid's own serial space, used when
// contid stamps records itself (no kernel audit). Kernel serials are 32-bit,
// so serials at or above 2^32 cannot collide with them.
const OwnSerialBase uint64 = 1 << 32

// StampAt returns the stamp for a unix time in nanoseconds with a serial.
func StampAt(unixNano int64, serial uint64) Stamp {
	sec := unixNano / 1e9
	rem := unixNano % 1e9
	if rem < 0 {
		sec--
		rem += 1e9
	}
	return Stamp{Sec: sec, Msec: uint32(rem / 1e6), Serial: serial}
}

// Enc says how a field's value is written.
type Enc uint8

const (
	// Plain values are written as they are (numbers, names, chains). A
	// value that would not read back as itself (a space, a control byte, a
	// leading quote, …) is written as hex instead, so it can never forge a
	// field; see AppendRaw.
	Plain Enc = iota
	// Untrusted values are written as the kernel's audit_log_untrustedstring
	// does: in double quotes when every byte is printable ASCII other than
	// '"' and space, else as upper-case hex.
	Untrusted
	// Quoted values were read in double quotes (parser output only).
	Quoted
	// Hex values were read hex-encoded (or are to be written so); Value
	// holds the decoded bytes. The parser decodes only upper-case hex, so
	// the text as written is exactly the upper-case hex of Value.
	Hex
	// Null is the literal (null), the kernel's way of writing a missing
	// string. Formatters ignore Value; the parser sets it to "(null)".
	Null
	// Single values were read in single quotes (parser output only): the
	// msg='…' of a user record whose text is not a list of fields, or
	// another key='…'. Value is the text between the quotes.
	Single
)

// Field is one key=value pair. Value holds the decoded value.
type Field struct {
	Key   string
	Value string
	Enc   Enc
	// Enriched marks fields auditd appended after the 0x1D separator
	// (log_format=ENRICHED); they interpret, not describe, the event.
	Enriched bool
	// InMsg marks fields that sit inside the msg='…' of a user-space record
	// (types 1100–1199, 2100–2999 sent through the kernel): the parser
	// flattens msg='op=x res=success' into InMsg fields op and res, and
	// AppendRaw writes a run of InMsg fields back as one msg='…'.
	InMsg bool
}

// Record is one audit record.
type Record struct {
	Node   string // node= prefix, empty when absent
	Type   Type
	Stamp  Stamp
	Fields []Field
	// Raw, when set, is the record's line as read (without the trailing
	// newline); raw formatting writes it unchanged.
	Raw string
}

// Get returns the decoded value of the first field named key.
func (r *Record) Get(key string) (string, bool) {
	for i := range r.Fields {
		if r.Fields[i].Key == key {
			return r.Fields[i].Value, true
		}
	}
	return "", false
}
