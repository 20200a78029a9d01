package tracker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
	"github.com/contid/contid/internal/ns"
	"github.com/contid/contid/internal/source/taskevent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// encode writes e in the kernel's layout; the inverse of Decode.
func encode(e taskevent.Event, size int) []byte {
	want := map[taskevent.Kind]int{taskevent.KindFork: forkSize, taskevent.KindExec: execSize, taskevent.KindExit: exitSize, taskevent.KindNS: nsEventSize, taskevent.KindJoin: joinSize}[e.Kind]
	if size == 0 {
		size = want
	}
	b := make([]byte, max(size, want, hdrSize))
	b[offKind] = byte(e.Kind)
	b[offVersion] = eventVersion
	ne.PutUint16(b[offSize:], uint16(size))
	var flags uint32
	if e.HasContid {
		flags |= flagContid
		ne.PutUint64(b[offContid:], uint64(e.Contid))
	} else {
		ne.PutUint64(b[offContid:], uint64(contid.Unset))
	}
	if e.Thread {
		flags |= flagThread
	}
	if e.GroupDead {
		flags |= flagGroupDead
	}
	if e.GroupDeadExact {
		flags |= flagGroupDeadKnow
	}
	if e.JoinedCgroup {
		flags |= flagJoined
	}
	ne.PutUint32(b[offFlags:], flags)
	ne.PutUint64(b[offTime:], e.Time)
	ne.PutUint64(b[offStartTime:], e.StartTime)
	ne.PutUint64(b[offStartBoottime:], e.StartBoottime)
	ne.PutUint32(b[offTID:], uint32(e.TID))
	ne.PutUint32(b[offTGID:], uint32(e.TGID))
	ne.PutUint32(b[offUID:], e.UID)
	ne.PutUint32(b[offAUID:], e.AUID)
	ne.PutUint32(b[offSes:], e.Ses)
	copy(b[offComm:offComm+16], e.Comm)
	body := b[hdrSize:]
	putSet := func(at []byte, s ns.Set) {
		for i, id := range s {
			putNS(at[i*nsRecSize:], id)
		}
		putNS(at[8*nsRecSize:], e.PIDForChildren)
		putNS(at[9*nsRecSize:], e.TimeForChildren)
	}
	switch e.Kind {
	case taskevent.KindFork:
		ne.PutUint32(body[0:], uint32(e.ParentTID))
		ne.PutUint32(body[4:], uint32(e.ParentTGID))
		ne.PutUint64(body[8:], e.CloneFlags)
		putSet(body[16:], e.NS)
	case taskevent.KindExec:
		ne.PutUint32(body[0:], uint32(e.OldTID))
		putSet(body[8:], e.NS)
	case taskevent.KindExit:
		ne.PutUint32(body[0:], uint32(e.ExitCode))
		putSet(body[8:], e.NS)
	case taskevent.KindNS:
		ne.PutUint32(body[0:], uint32(e.Op))
		putSet(body[8:], e.NS)
	case taskevent.KindJoin:
		ne.PutUint64(body[0:], uint64(e.CgroupContid))
		ne.PutUint64(body[8:], e.CgroupID)
		ne.PutUint32(body[16:], uint32(e.MoverTID))
		ne.PutUint32(body[20:], uint32(e.MoverTGID))
		ne.PutUint32(body[24:], e.CgroupHier)
		if e.Tagged {
			ne.PutUint32(body[28:], 1)
		}
	}
	return b
}

func putNS(b []byte, id ns.ID) {
	ne.PutUint64(b[0:], id.Unique)
	ne.PutUint32(b[8:], id.Ino)
}

func testSet(dev uint32) ns.Set {
	var s ns.Set
	for i := range s {
		s[i] = ns.ID{Dev: dev, Ino: 4026531835 + uint32(i), Unique: 4096 + uint64(i)}
	}
	return s
}

func TestDecode(t *testing.T) {
	const dev = 4
	hdr := taskevent.Event{
		Time: 1_000_000, TID: 120, TGID: 100, StartTime: 900_000, StartBoottime: 950_000,
		HasContid: true, Contid: 42, UID: 1000, AUID: 1000, Ses: 3, Comm: "sh",
	}
	with := func(f func(*taskevent.Event)) taskevent.Event {
		e := hdr
		f(&e)
		return e
	}
	for _, c := range []struct {
		name string
		ev   taskevent.Event
	}{
		{"fork process", with(func(e *taskevent.Event) {
			e.Kind, e.ParentTID, e.ParentTGID, e.CloneFlags, e.NS = taskevent.KindFork, 99, 99, 0x11, testSet(dev)
		})},
		{"fork thread", with(func(e *taskevent.Event) {
			e.Kind, e.ParentTID, e.ParentTGID, e.CloneFlags, e.Thread, e.NS = taskevent.KindFork, 100, 100, 0x3d0f00, true, testSet(dev)
		})},
		{"fork into a bound cgroup", with(func(e *taskevent.Event) {
			e.Kind, e.ParentTID, e.ParentTGID, e.CloneFlags, e.JoinedCgroup, e.NS = taskevent.KindFork, 99, 99, 0x200000000, true, testSet(dev)
		})},
		{"join", with(func(e *taskevent.Event) {
			e.Kind, e.CgroupContid, e.CgroupID, e.CgroupHier, e.MoverTID, e.MoverTGID, e.Tagged = taskevent.KindJoin, 42, 7788, 0, 55, 50, true
		})},
		{"join refused", with(func(e *taskevent.Event) {
			e.Kind, e.Contid, e.CgroupContid, e.CgroupID, e.CgroupHier, e.MoverTID, e.MoverTGID = taskevent.KindJoin, 9, 42, 7788, 4, 55, 50
		})},
		{"fork untagged", with(func(e *taskevent.Event) {
			e.Kind, e.HasContid, e.Contid, e.NS = taskevent.KindFork, false, contid.Unset, testSet(dev)
		})},
		{"contid zero", with(func(e *taskevent.Event) {
			e.Kind, e.Contid, e.NS = taskevent.KindExec, 0, testSet(dev)
		})},
		{"exec from thread", with(func(e *taskevent.Event) {
			e.Kind, e.OldTID, e.Comm, e.NS = taskevent.KindExec, 121, "sleep", testSet(dev)
		})},
		{"exec full comm", with(func(e *taskevent.Event) {
			e.Kind, e.OldTID, e.Comm, e.NS = taskevent.KindExec, 120, "0123456789abcdef", testSet(dev)
		})},
		{"exit last thread", with(func(e *taskevent.Event) {
			e.Kind, e.ExitCode, e.GroupDead, e.GroupDeadExact, e.NS = taskevent.KindExit, 3<<8, true, true, testSet(dev)
		})},
		{"exit thread", with(func(e *taskevent.Event) {
			e.Kind, e.GroupDeadExact = taskevent.KindExit, true
		})},
		{"exit old kernel", with(func(e *taskevent.Event) {
			e.Kind, e.GroupDead = taskevent.KindExit, true
		})},
		{"unshare", with(func(e *taskevent.Event) {
			e.Kind, e.Op, e.NS = taskevent.KindNS, taskevent.NSUnshare, testSet(dev)
			e.PIDForChildren = ns.ID{Dev: dev, Ino: 4026532000, Unique: 9000}
			e.TimeForChildren = e.NS[ns.Time]
		})},
		{"scan", with(func(e *taskevent.Event) {
			e.Kind, e.Op, e.NS = taskevent.KindNS, taskevent.NSScan, testSet(dev)
			e.PIDForChildren = e.NS[ns.PID]
		})},
		{"setns without unique ids", with(func(e *taskevent.Event) {
			e.Kind, e.Op = taskevent.KindNS, taskevent.NSSetns
			for i := range e.NS {
				e.NS[i] = ns.ID{Dev: dev, Ino: 4026531835 + uint32(i)}
			}
		})},
		{"missing namespaces", with(func(e *taskevent.Event) {
			e.Kind, e.Op = taskevent.KindNS, taskevent.NSSetns // zero inodes decode as zero IDs
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(encode(c.ev, 0), dev)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.ev {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, c.ev)
			}
		})
	}
}

func TestDecodeComm(t *testing.T) {
	b := encode(taskevent.Event{Kind: taskevent.KindExit}, 0)
	copy(b[offComm:], "ab\x00cd")
	e, err := Decode(b, 0)
	if err != nil || e.Comm != "ab" {
		t.Errorf("Decode = %q, %v; want comm %q", e.Comm, err, "ab")
	}
}

func TestDecodeSizes(t *testing.T) {
	ok := encode(taskevent.Event{Kind: taskevent.KindFork}, 0)
	// Longer declared size (a newer kernel side appending a field) is fine
	// as long as the sample holds it; bytes past the size are ignored.
	longer := encode(taskevent.Event{Kind: taskevent.KindFork, TID: 5}, forkSize+8)
	if e, err := Decode(longer, 0); err != nil || e.TID != 5 {
		t.Errorf("longer event: %+v, %v", e, err)
	}
	if _, err := Decode(append(ok, 1, 2, 3), 0); err != nil {
		t.Errorf("trailing bytes: %v", err)
	}

	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"short header", ok[:hdrSize-1]},
		{"header only", ok[:hdrSize]},
		{"short body", ok[:forkSize-1]},
		{"size below kind", withSize(ok, exitSize)},
		{"size beyond sample", withSize(ok, forkSize+1)},
		{"unknown kind", withByte(ok, offKind, 9)},
		{"kind zero", withByte(ok, offKind, 0)},
		{"version", withByte(ok, offVersion, 2)},
		{"ns op", withByte(encode(taskevent.Event{Kind: taskevent.KindNS, Op: taskevent.NSSetns}, 0), hdrSize, 7)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if e, err := Decode(c.raw, 0); !errors.Is(err, taskevent.ErrMalformed) {
				t.Errorf("Decode = %+v, %v; want taskevent.ErrMalformed", e, err)
			}
		})
	}
}

func withByte(b []byte, off int, v byte) []byte {
	b = bytes.Clone(b)
	b[off] = v
	return b
}

func withSize(b []byte, size int) []byte {
	b = bytes.Clone(b)
	ne.PutUint16(b[offSize:], uint16(size))
	return b
}

func littleEndian() bool { return ne.Uint16([]byte{1, 0}) == 1 }

// recorded reads testdata/events/*.hex: samples recorded from a real kernel
// by TestRecord (one hex sample per line; "# nsdev N" gives the device).
func recorded(t testing.TB) map[string][][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded samples: %v", err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			raw, err := hex.DecodeString(line)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[f] = append(out[f], raw)
		}
	}
	return out
}

func recordedDev(t testing.TB, file string) uint32 {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# nsdev "); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(n)
		}
	}
	t.Fatalf("%s: no # nsdev line", file)
	return 0
}

// TestDecodeRecorded replays samples recorded from the kernel against golden
// files (refresh with -update).
func TestDecodeRecorded(t *testing.T) {
	if !littleEndian() {
		t.Skip("the recorded samples are little-endian")
	}
	for file, samples := range recorded(t) {
		dev := recordedDev(t, file)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i, raw := range samples {
			e, err := Decode(raw, dev)
			if err != nil {
				t.Errorf("%s: sample %d: %v", file, i+1, err)
				continue
			}
			if err := enc.Encode(e); err != nil {
				t.Fatal(err)
			}
		}
		golden := strings.TrimSuffix(file, ".hex") + ".golden"
		if *update {
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s decodes differently from %s (run with -update to accept):\n%s", file, golden, buf.Bytes())
		}
	}
}

func FuzzDecode(f *testing.F) {
	if littleEndian() {
		for _, samples := range recorded(f) {
			for _, raw := range samples {
				f.Add(raw)
			}
		}
	}
	for _, k := range []taskevent.Kind{taskevent.KindFork, taskevent.KindExec, taskevent.KindExit, taskevent.KindNS} {
		f.Add(encode(taskevent.Event{Kind: k, Op: taskevent.NSSetns, Comm: "x"}, 0))
	}
	f.Add([]byte{})
	f.Add(make([]byte, hdrSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Decode(raw, 4)
		if err != nil {
			if !errors.Is(err, taskevent.ErrMalformed) {
				t.Fatalf("error %v does not wrap taskevent.ErrMalformed", err)
			}
			return
		}
		size := int(binary.NativeEndian.Uint16(raw[offSize:]))
		if size > len(raw) || size < hdrSize {
			t.Fatalf("accepted size %d of a %d-byte sample", size, len(raw))
		}
		if e.Kind < taskevent.KindFork || e.Kind > taskevent.KindNS {
			t.Fatalf("accepted kind %v", e.Kind)
		}
		if !e.HasContid && e.Contid != contid.Unset {
			t.Fatalf("contid %v without the flag", e.Contid)
		}
		// Decoding is a function of the declared bytes only.
		again, err := Decode(raw[:size], 4)
		if err != nil || again != e {
			t.Fatalf("re-decoding the declared bytes: %+v, %v", again, err)
		}
	})
}
