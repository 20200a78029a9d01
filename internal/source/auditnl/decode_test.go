package auditnl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// captured returns the datagrams in testdata/captured by file name.
func captured(t testing.TB) map[string][]byte {
	t.Helper()
	return readCaptured(t, capturedDir, "go test -run TestCaptureSeeds -update, as root")
}

// readCaptured returns the datagrams dir/*.bin by file name; finding none
// fails t, naming the command (recapture) that captures them again.
func readCaptured(t testing.TB, dir, recapture string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captured datagrams in %s (recapture with: %s): %v", dir, recapture, err)
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(f)] = b
	}
	return m
}

// TestDecodeCaptured replays datagrams captured from Linux 6.18 (see
// TestCaptureSeeds): every one decodes to exactly one message, records
// decode the same from the unicast quirk and from multicast.
func TestDecodeCaptured(t *testing.T) {
	recordTypes := map[string]uint16{"syscall": 1300, "execve": 1309, "path": 1302, "proctitle": 1327, "eoe": 1320, "cwd": 1307, "user-2900": 2900}
	var unicastSyscall, multicastSyscall []byte
	for name, b := range captured(t) {
		t.Run(name, func(t *testing.T) {
			msgs, err := Decode(b)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("Decode: %d messages, %v; want 1, nil", len(msgs), err)
			}
			m := msgs[0]
			// linux-RELEASE-KIND.bin
			kind := strings.TrimSuffix(name, ".bin")
			if _, rest, ok := strings.Cut(strings.TrimPrefix(kind, "linux-"), "-"); ok {
				kind = rest
			}
			switch kind {
			case "ack-ok", "ack-einval", "ack-eexist":
				want := map[string]unix.Errno{"ack-ok": 0, "ack-einval": unix.EINVAL, "ack-eexist": unix.EEXIST}[kind]
				if m.Header.Type != unix.NLMSG_ERROR {
					t.Fatalf("type %d, want NLMSG_ERROR", m.Header.Type)
				}
				ack, err := ParseAck(m.Data)
				if err != nil || ack.Errno != want {
					t.Fatalf("ParseAck = %+v, %v; want errno %v", ack, err, want)
				}
				if (ack.Err() == nil) != (want == 0) {
					t.Errorf("Err() = %v", ack.Err())
				}
				if ack.Request.Type != unix.AUDIT_GET && ack.Request.Type != unix.AUDIT_SET {
					t.Errorf("acked request type %d", ack.Request.Type)
				}
			case "audit-get-reply":
				if m.Header.Type != unix.AUDIT_GET {
					t.Fatalf("type %d, want AUDIT_GET", m.Header.Type)
				}
				st, err := ParseStatus(m.Data)
				if err != nil {
					t.Fatal(err)
				}
				// The state this machine boots with (docs/kernel.md).
				want := Status{Failure: 1, BacklogLimit: 64, FeatureBitmap: 0x7f, BacklogWaitTime: 15000, Len: 44}
				if st != want {
					t.Errorf("status %+v, want %+v", st, want)
				}
			case "unicast-replace":
				if m.Header.Type != unix.AUDIT_REPLACE || IsRecordType(m.Header.Type) || len(m.Data) != 4 {
					t.Errorf("AUDIT_REPLACE: %+v", m)
				}
			default:
				unicast := strings.HasPrefix(kind, "unicast-")
				typ, ok := recordTypes[strings.TrimPrefix(strings.TrimPrefix(kind, "unicast-"), "multicast-")]
				if !ok {
					t.Fatalf("no expectation for %s", name)
				}
				if m.Header.Type != typ || !IsRecordType(typ) {
					t.Errorf("type %d, want %d", m.Header.Type, typ)
				}
				// The kernel's unicast quirk: nlmsg_len counts the payload only.
				wantLen := uint32(len(b))
				if unicast {
					wantLen -= HeaderLen
				}
				if m.Header.Len != wantLen {
					t.Errorf("nlmsg_len %d, want %d", m.Header.Len, wantLen)
				}
				if !bytes.Equal(m.Data, b[HeaderLen:]) {
					t.Errorf("payload is not the rest of the datagram")
				}
				if bytes.IndexByte(m.Data, 0) >= 0 {
					t.Errorf("payload has a NUL: %q", m.Data)
				}
				st, body, err := ParseStamp(m.Data)
				if err != nil || st.Serial == 0 || st.Sec < 1e9 {
					t.Errorf("ParseStamp = %v, %v", st, err)
				}
				if typ == 1320 && len(body) != 0 {
					t.Errorf("EOE body %q, want empty", body)
				}
				if typ == 2900 && !bytes.HasSuffix(body, []byte(" msg='op=capture contid=5 res=success'")) {
					t.Errorf("user record body %q", body)
				}
				switch kind {
				case "unicast-syscall":
					unicastSyscall = m.Data
				case "multicast-syscall":
					multicastSyscall = m.Data
				}
			}
		})
	}
	if unicastSyscall != nil && multicastSyscall != nil && !bytes.Equal(unicastSyscall, multicastSyscall) {
		t.Errorf("one record, two payloads:\nunicast   %q\nmulticast %q", unicastSyscall, multicastSyscall)
	}
}

func msg(typ, flags uint16, seq uint32, payload string) []byte {
	return appendMessage(nil, Header{Type: typ, Flags: flags, Seq: seq}, []byte(payload))
}

// quirk encodes a record the way the kernel unicasts it: nlmsg_len is the
// payload's length, and no padding follows.
func quirk(typ uint16, payload string) []byte {
	b := msg(typ, 0, 0, payload)[:HeaderLen+len(payload)]
	b[0], b[1], b[2], b[3] = byte(len(payload)), byte(len(payload)>>8), 0, 0
	return b
}

func TestDecode(t *testing.T) {
	ack := msg(unix.NLMSG_ERROR, 0, 7, string(make([]byte, 4+HeaderLen)))
	status := appendMessage(nil, Header{Type: unix.AUDIT_GET, Seq: 7}, marshalStatus(Status{Enabled: 1, PID: 42}))
	done := msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 7, "\x00\x00\x00\x00")
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name    string
		in      []byte
		types   []uint16
		data    []string // nil: not checked
		wantErr error
	}{
		{name: "empty", in: nil},
		{name: "one padded", in: msg(1300, 0, 0, "audit(1.000:1): x"), types: []uint16{1300}, data: []string{"audit(1.000:1): x"}},
		{name: "several in one datagram", in: cat(status, ack, done), types: []uint16{unix.AUDIT_GET, unix.NLMSG_ERROR, unix.NLMSG_DONE}},
		{name: "unicast quirk", in: quirk(1300, "audit(1.000:1): arch=c000003e"), types: []uint16{1300}, data: []string{"audit(1.000:1): arch=c000003e"}},
		{name: "unicast quirk, payload shorter than a header", in: quirk(1320, "audit("), types: []uint16{1320}, data: []string{"audit("}},
		{name: "quirk only for record types", in: quirk(unix.NLMSG_ERROR, strings.Repeat("x", 20)), types: []uint16{unix.NLMSG_ERROR}, data: []string{"xxxx"}, wantErr: ErrTruncated},
		{name: "records then done", in: cat(msg(1300, 0, 0, "a"), msg(1320, 0, 0, "b"), done), types: []uint16{1300, 1320, unix.NLMSG_DONE}, data: []string{"a", "b", "\x00\x00\x00\x00"}},
		{name: "header cut", in: status[:10], wantErr: ErrTruncated},
		{name: "payload cut", in: status[:30], wantErr: ErrTruncated},
		{name: "good then cut", in: cat(ack, status[:20]), types: []uint16{unix.NLMSG_ERROR}, wantErr: ErrTruncated},
		{name: "len below header", in: []byte{4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, wantErr: ErrMalformed},
		{name: "len zero", in: make([]byte, 32), wantErr: ErrMalformed},
		{name: "unpadded last message", in: msg(1300, 0, 0, "abc")[:HeaderLen+3], types: []uint16{1300}, data: []string{"abc"}},
		{name: "trailing bytes", in: cat(ack, []byte{1, 2, 3, 4}), types: []uint16{unix.NLMSG_ERROR}, wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := Decode(tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if len(msgs) != len(tt.types) {
				t.Fatalf("%d messages, want %d: %+v", len(msgs), len(tt.types), msgs)
			}
			for i, m := range msgs {
				if m.Header.Type != tt.types[i] {
					t.Errorf("message %d: type %d, want %d", i, m.Header.Type, tt.types[i])
				}
				if tt.data != nil && string(m.Data) != tt.data[i] {
					t.Errorf("message %d: data %q, want %q", i, m.Data, tt.data[i])
				}
			}
		})
	}
}

func TestParseStamp(t *testing.T) {
	tests := []struct {
		in   string
		want Stamp
		body string
		ok   bool
	}{
		{"audit(1795718570.553:3): arch=c000003e", Stamp{1795718570, 553, 3}, "arch=c000003e", true},
		{"audit(1795718570.553:3): ", Stamp{1795718570, 553, 3}, "", true},
		{"audit(1.000:18446744073709551615):", Stamp{1, 0, 1<<64 - 1}, "", true},
		{"audit(0.999:0):  two", Stamp{0, 999, 0}, " two", true},
		{"audit(1.000:18446744073709551616): x", Stamp{}, "", false},
		{"audit(1.00:1): x", Stamp{}, "", false},
		{"audit(1.0000:1): x", Stamp{}, "", false},
		{"audit(.000:1): x", Stamp{}, "", false},
		{"audit(1.000:): x", Stamp{}, "", false},
		{"audit(1.000:1) x", Stamp{}, "", false},
		{"audit(1.000:1", Stamp{}, "", false},
		{"audit(123456789012345678901.000:1): x", Stamp{}, "", false},
		{"type=SYSCALL msg=audit(1.000:1): x", Stamp{}, "", false},
		{"", Stamp{}, "", false},
	}
	for _, tt := range tests {
		st, body, err := ParseStamp([]byte(tt.in))
		if (err == nil) != tt.ok || st != tt.want || string(body) != tt.body {
			t.Errorf("ParseStamp(%q) = %v, %q, %v; want %v, %q, ok=%v", tt.in, st, body, err, tt.want, tt.body, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStamp(%q): error %v does not wrap ErrMalformed", tt.in, err)
		}
	}
	if s := (Stamp{1795718570, 53, 3}).String(); s != "1795718570.053:3" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseStatus(t *testing.T) {
	full := marshalStatus(Status{Mask: 1, Enabled: 2, Failure: 3, PID: 4, RateLimit: 5, BacklogLimit: 6, Lost: 7, Backlog: 8, FeatureBitmap: 9, BacklogWaitTime: 10, BacklogWaitTimeActual: 11})
	st, err := ParseStatus(full)
	if err != nil || st != (Status{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 44}) {
		t.Errorf("full: %+v, %v", st, err)
	}
	// An older kernel's shorter structure: the missing fields are zero.
	st, err = ParseStatus(full[:32])
	if err != nil || st != (Status{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 32}) {
		t.Errorf("short: %+v, %v", st, err)
	}
	// A newer kernel's longer one: the unknown tail is ignored.
	st, err = ParseStatus(append(full, 1, 2, 3, 4, 5))
	if err != nil || st.BacklogWaitTimeActual != 11 || st.Len != 44 {
		t.Errorf("long: %+v, %v", st, err)
	}
	if _, err := ParseStatus(full[:31]); !errors.Is(err, ErrTruncated) {
		t.Errorf("too short: %v", err)
	}
}

func TestParseAck(t *testing.T) {
	if _, err := ParseAck(make([]byte, 19)); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: %v", err)
	}
	if _, err := ParseAck(append([]byte{1, 0, 0, 0}, make([]byte, 16)...)); !errors.Is(err, ErrMalformed) {
		t.Errorf("positive error: %v", err)
	}
	b := append([]byte{0, 0, 0, 0x80}, msg(unix.AUDIT_SET, 5, 9, "")...) // INT32_MIN
	if a, err := ParseAck(b); err != nil || a.Errno != 1<<31 || a.Request.Seq != 9 || a.Request.Type != unix.AUDIT_SET {
		t.Errorf("INT32_MIN: %+v, %v", a, err)
	}
}

func TestTypes(t *testing.T) {
	for _, tt := range []struct {
		t            uint16
		record, user bool
	}{
		{unix.NLMSG_ERROR, false, false}, {unix.AUDIT_GET, false, false}, {1004, false, false},
		{unix.AUDIT_USER, true, false}, {unix.AUDIT_LOGIN, true, false}, {1007, false, false},
		{1099, false, false}, {1100, true, true}, {1199, true, true}, {1200, true, false},
		{1300, true, false}, {unix.AUDIT_REPLACE, false, false}, {1335, true, false},
		{2099, true, false}, {2100, true, true}, {2900, true, true}, {2999, true, true}, {3000, true, false},
	} {
		if IsRecordType(tt.t) != tt.record || IsUserType(tt.t) != tt.user {
			t.Errorf("type %d: record %v user %v, want %v %v", tt.t, IsRecordType(tt.t), IsUserType(tt.t), tt.record, tt.user)
		}
	}
}

// FuzzDecode feeds arbitrary datagrams to every parser: none may panic,
// every payload lies inside the input, and a message re-encoded by the
// netlink rules decodes to itself.
func FuzzDecode(f *testing.F) {
	for _, b := range captured(f) {
		f.Add(b)
	}
	for _, b := range [][]byte{
		nil,
		msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, "\x00\x00\x00\x00"),
		appendMessage(msg(unix.NLMSG_ERROR, 0, 1, string(make([]byte, 20))), Header{Type: unix.AUDIT_GET, Seq: 1}, marshalStatus(Status{PID: 1})),
		quirk(1300, "audit(1.000:1): a"),
		quirk(2900, "audit(1795718570.557:4): pid=1 msg='x'"),
		msg(1300, 0, 0, "audit(99999999999999999999.999:99999999999999999999): "),
		{0xff, 0xff, 0xff, 0xff, 0x14, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := Decode(b)
		total := 0
		for _, m := range msgs {
			total += HeaderLen + len(m.Data)
			if len(m.Data) > 0 && !within(b, m.Data) {
				t.Fatalf("payload outside the input")
			}
			switch {
			case m.Header.Type == unix.NLMSG_ERROR:
				ParseAck(m.Data)
			case m.Header.Type == unix.AUDIT_GET:
				ParseStatus(m.Data)
			case IsRecordType(m.Header.Type):
				ParseStamp(m.Data)
			}
			re, err := Decode(appendMessage(nil, m.Header, m.Data))
			if err != nil || len(re) != 1 || !bytes.Equal(re[0].Data, m.Data) || re[0].Header.Type != m.Header.Type {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", m, re, err)
			}
		}
		if total > len(b) {
			t.Fatalf("%d bytes of messages from %d bytes", total, len(b))
		}
		if err == nil && len(b) > 0 && len(msgs) == 0 {
			t.Fatalf("no messages and no error from %d bytes", len(b))
		}
	})
}

// within reports whether sub is a subslice of b.
func within(b, sub []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return len(sub) == 0
	}
	for i := range b {
		if &b[i] == &sub[0] {
			return i+len(sub) <= len(b) && &b[i+len(sub)-1] == &sub[len(sub)-1]
		}
	}
	return false
}

// BenchmarkDecode: one captured SYSCALL datagram through Decode and
// ParseStamp, the per-record work of Receive besides the syscall.
func BenchmarkDecode(b *testing.B) {
	var dgram []byte
	for name, d := range captured(b) {
		if strings.HasSuffix(name, "-unicast-syscall.bin") {
			dgram = d
		}
	}
	if dgram == nil {
		b.Fatal("no captured unicast SYSCALL datagram")
	}
	b.SetBytes(int64(len(dgram)))
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := Decode(dgram)
		if err != nil || len(msgs) != 1 {
			b.Fatal(err)
		}
		if _, _, err := ParseStamp(msgs[0].Data); err != nil {
			b.Fatal(err)
		}
	}
}
