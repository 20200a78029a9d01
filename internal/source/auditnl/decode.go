package auditnl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Decoding errors. Decode, ParseAck, ParseStatus and ParseStamp wrap one of
// them with the detail; they never panic, whatever the input.
var (
	// ErrTruncated: the input ends inside a message (a header that
	// announces more bytes than are left, or fewer than 16 bytes left).
	ErrTruncated = errors.New("auditnl: truncated message")
	// ErrMalformed: the bytes cannot be what the kernel sends.
	ErrMalformed = errors.New("auditnl: malformed message")
)

// HeaderLen is the size of struct nlmsghdr.
const HeaderLen = unix.NLMSG_HDRLEN

// Header is struct nlmsghdr as received, in host byte order.
type Header struct {
	Len    uint32 // nlmsg_len as the kernel wrote it (see Decode for records)
	Type   uint16 // NLMSG_* or an audit message type (AUDIT_GET, a record type)
	Flags  uint16
	Seq    uint32
	PortID uint32 // nlmsg_pid: 0 for messages from the kernel
}

// Raw is one netlink message of a datagram.
type Raw struct {
	Header Header
	// Data is the payload; it aliases the input of Decode.
	Data []byte
}

// Decode splits one received datagram into its netlink messages.
//
// The kernel sends every audit record in a datagram of its own, and for
// the registered audit daemon it writes nlmsg_len as the length of the
// payload alone (a quirk that auditd depends on, kept by the kernel for
// unicast and corrected in the multicast copy). So a message whose type is
// a record type (IsRecordType) and whose nlmsg_len is exactly HeaderLen
// short of the bytes left is taken as such a record: its payload is the
// rest of the datagram. Every other message is read by the netlink rules
// (nlmsg_len includes the header; messages are padded to 4 bytes).
//
// Decode returns the messages it could read and, if the datagram does not
// end cleanly, an error wrapping ErrTruncated or ErrMalformed for the rest.
func Decode(b []byte) ([]Raw, error) {
	var msgs []Raw
	for len(b) > 0 {
		if len(b) < HeaderLen {
			return msgs, fmt.Errorf("%w: %d bytes left, a header needs %d", ErrTruncated, len(b), HeaderLen)
		}
		h := decodeHeader(b)
		var data []byte
		switch {
		case IsRecordType(h.Type) && uint64(h.Len)+HeaderLen == uint64(len(b)):
			data, b = b[HeaderLen:], nil
		case h.Len < HeaderLen:
			return msgs, fmt.Errorf("%w: nlmsg_len %d of type %d is shorter than its header", ErrMalformed, h.Len, h.Type)
		case uint64(h.Len) > uint64(len(b)):
			return msgs, fmt.Errorf("%w: type %d announces %d bytes, %d left", ErrTruncated, h.Type, h.Len, len(b))
		default:
			data = b[HeaderLen:h.Len]
			next := min(align4(uint64(h.Len)), uint64(len(b)))
			b = b[next:]
		}
		msgs = append(msgs, Raw{Header: h, Data: data})
	}
	return msgs, nil
}

func decodeHeader(b []byte) Header {
	ne := binary.NativeEndian
	return Header{
		Len:    ne.Uint32(b[0:4]),
		Type:   ne.Uint16(b[4:6]),
		Flags:  ne.Uint16(b[6:8]),
		Seq:    ne.Uint32(b[8:12]),
		PortID: ne.Uint32(b[12:16]),
	}
}

func align4(n uint64) uint64 { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// IsRecordType reports whether t is the type of an audit record (an event
// the kernel logs, or a user-space record it relays), as opposed to a
// netlink control message (NLMSG_*), a reply to a request (1000–1099) or
// the kernel's AUDIT_REPLACE probe of the registered daemon.
//
// Two types below 1100 are records too: AUDIT_USER (1005), the generic
// user message (auditctl -m) the kernel relays, and AUDIT_LOGIN (1006),
// which the kernel logs when a loginuid is set.
func IsRecordType(t uint16) bool {
	return (t >= unix.AUDIT_FIRST_USER_MSG && t != unix.AUDIT_REPLACE) || t == unix.AUDIT_USER || t == unix.AUDIT_LOGIN
}

// IsUserType reports whether t is in a range the kernel accepts as a
// user-space record from a process with CAP_AUDIT_WRITE that is not the
// generic AUDIT_USER: 1100–1199 and 2100–2999.
func IsUserType(t uint16) bool {
	return (t >= unix.AUDIT_FIRST_USER_MSG && t <= unix.AUDIT_LAST_USER_MSG) ||
		(t >= unix.AUDIT_FIRST_USER_MSG2 && t <= unix.AUDIT_LAST_USER_MSG2)
}

// Ack is the payload of an NLMSG_ERROR message: the kernel's answer to a
// request sent with NLM_F_ACK, or to a failed request.
type Ack struct {
	Errno   unix.Errno // 0 for success
	Request Header     // the header of the request answered
}

// Err returns nil for a successful ack, else the errno.
func (a Ack) Err() error {
	if a.Errno == 0 {
		return nil
	}
	return a.Errno
}

// ParseAck decodes the payload of an NLMSG_ERROR message (struct nlmsgerr:
// a negative errno, then the request's header, then possibly more of the
// request, which is ignored).
func ParseAck(data []byte) (Ack, error) {
	if len(data) < 4+HeaderLen {
		return Ack{}, fmt.Errorf("%w: NLMSG_ERROR payload of %d bytes, want %d", ErrTruncated, len(data), 4+HeaderLen)
	}
	e := int64(int32(binary.NativeEndian.Uint32(data[0:4])))
	if e > 0 {
		return Ack{}, fmt.Errorf("%w: NLMSG_ERROR with positive error %d", ErrMalformed, e)
	}
	return Ack{Errno: unix.Errno(-e), Request: decodeHeader(data[4:])}, nil
}

// Status is struct audit_status, the kernel's audit state as AUDIT_GET
// returns it and AUDIT_SET changes it (linux/audit.h).
type Status struct {
	Mask                  uint32 // AUDIT_STATUS_* bits: which fields an AUDIT_SET changes
	Enabled               uint32 // 0 off, 1 on, 2 on and locked until reboot
	Failure               uint32 // failure action: 0 silent, 1 printk, 2 panic
	PID                   uint32 // the registered audit daemon, 0 for none
	RateLimit             uint32 // records per second, 0 for no limit
	BacklogLimit          uint32 // records queued in the kernel before it waits or loses
	Lost                  uint32 // records the kernel lost since boot or the last reset
	Backlog               uint32 // records queued now
	FeatureBitmap         uint32 // AUDIT_FEATURE_BITMAP_* (was the API version)
	BacklogWaitTime       uint32 // jiffies a producer may wait on a full backlog
	BacklogWaitTimeActual uint32 // jiffies producers spent waiting on a full backlog
	// Len is the number of bytes of the structure the kernel sent; older
	// kernels send fewer fields, and the missing ones are left zero.
	Len int
}

// statusLen is the size of struct audit_status with every field above.
const statusLen = 11 * 4

// minStatusLen covers mask … backlog, which every kernel with netlink
// audit has sent.
const minStatusLen = 8 * 4

// ParseStatus decodes the payload of an AUDIT_GET reply. Bytes beyond the
// fields it knows (a newer kernel) are ignored.
func ParseStatus(data []byte) (Status, error) {
	if len(data) < minStatusLen {
		return Status{}, fmt.Errorf("%w: audit_status of %d bytes, want at least %d", ErrTruncated, len(data), minStatusLen)
	}
	var f [11]uint32
	for i := range f {
		if (i+1)*4 > len(data) {
			break
		}
		f[i] = binary.NativeEndian.Uint32(data[i*4:])
	}
	return Status{
		Mask: f[0], Enabled: f[1], Failure: f[2], PID: f[3], RateLimit: f[4],
		BacklogLimit: f[5], Lost: f[6], Backlog: f[7], FeatureBitmap: f[8],
		BacklogWaitTime: f[9], BacklogWaitTimeActual: f[10],
		Len: min(len(data), statusLen),
	}, nil
}

// Stamp is the time and serial number that open an audit record's
// payload, `audit(SEC.MSEC:SERIAL): `. Records of one event share it.
type Stamp struct {
	Sec    uint64 // seconds since the Unix epoch
	Msec   uint16 // 0–999
	Serial uint64 // event serial number
}

func (s Stamp) String() string { return fmt.Sprintf("%d.%03d:%d", s.Sec, s.Msec, s.Serial) }

// ParseStamp decodes the `audit(SEC.MSEC:SERIAL):` that opens a record's
// payload and returns the stamp and the body after it (without the
// separating space; the body may be empty, as in an EOE record).
func ParseStamp(data []byte) (Stamp, []byte, error) {
	const prefix = "audit("
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return Stamp{}, nil, fmt.Errorf("%w: record does not start with %q", ErrMalformed, prefix)
	}
	p := data[len(prefix):]
	sec, p, ok := parseUint(p, 20)
	if !ok || len(p) == 0 || p[0] != '.' {
		return Stamp{}, nil, fmt.Errorf("%w: bad seconds in record stamp", ErrMalformed)
	}
	p = p[1:]
	if len(p) < 3 || !isDigit(p[0]) || !isDigit(p[1]) || !isDigit(p[2]) {
		return Stamp{}, nil, fmt.Errorf("%w: bad milliseconds in record stamp", ErrMalformed)
	}
	msec := uint16(p[0]-'0')*100 + uint16(p[1]-'0')*10 + uint16(p[2]-'0')
	p = p[3:]
	if len(p) == 0 || p[0] != ':' {
		return Stamp{}, nil, fmt.Errorf("%w: no serial in record stamp", ErrMalformed)
	}
	serial, p, ok := parseUint(p[1:], 20)
	if !ok || len(p) < 2 || p[0] != ')' || p[1] != ':' {
		return Stamp{}, nil, fmt.Errorf("%w: bad serial in record stamp", ErrMalformed)
	}
	p = p[2:]
	if len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	return Stamp{Sec: sec, Msec: msec, Serial: serial}, p, nil
}

// parseUint reads 1 to max decimal digits without overflow.
func parseUint(p []byte, max int) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(p) && isDigit(p[i]); i++ {
		if i == max {
			return 0, nil, false
		}
		d := uint64(p[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, nil, false
		}
		v = v*10 + d
	}
	if i == 0 {
		return 0, nil, false
	}
	return v, p[i:], true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendMessage appends a netlink message with the given header fields
// (Len is computed) and payload, padded to 4 bytes.
func appendMessage(dst []byte, h Header, payload []byte) []byte {
	ne := binary.NativeEndian
	h.Len = uint32(HeaderLen + len(payload))
	dst = ne.AppendUint32(dst, h.Len)
	dst = ne.AppendUint16(dst, h.Type)
	dst = ne.AppendUint16(dst, h.Flags)
	dst = ne.AppendUint32(dst, h.Seq)
	dst = ne.AppendUint32(dst, h.PortID)
	dst = append(dst, payload...)
	for len(dst)%unix.NLMSG_ALIGNTO != 0 {
		dst = append(dst, 0)
	}
	return dst
}

// marshalStatus encodes s as the full struct audit_status (Len ignored).
func marshalStatus(s Status) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 0, statusLen)
	for _, v := range []uint32{s.Mask, s.Enabled, s.Failure, s.PID, s.RateLimit,
		s.BacklogLimit, s.Lost, s.Backlog, s.FeatureBitmap, s.BacklogWaitTime, s.BacklogWaitTimeActual} {
		b = ne.AppendUint32(b, v)
	}
	return b
}
