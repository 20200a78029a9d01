package fleet

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/contid/contid/internal/contid"
)

// FuzzEventOfMsg: a message's data comes from the stream, where any host
// (a compromised one too) may have written it under its own name: any
// bytes give an event or false, never a panic, and a well-formed
// message gives back its lines.
func FuzzEventOfMsg(f *testing.F) {
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=EOE msg=audit(1.000:1):\n"))
	f.Add([]byte("{\"contid\":[]}\ntype=SYSCALL msg=audit(1.000:1): pid=1\n"))
	f.Add([]byte("{"))
	f.Add([]byte("type=SYSCALL msg=audit(1.000:1): pid=1\ntype=SYSCALL msg=audit(2.000:2): pid=1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, ok := EventOfMsg(data)
		if !ok {
			return
		}
		body := string(data)
		if strings.HasPrefix(body, "{") {
			body = body[strings.IndexByte(body, '\n')+1:]
		}
		for _, l := range ev.Lines {
			if !strings.Contains(body, l) {
				t.Fatalf("line %q not in the message", l)
			}
		}
		ev.Parse()
	})
}

// FuzzParseBatch: a message's data comes from the stream, where any host
// may have written it: any bytes give frames inside the data or false,
// never a panic; frames written by AppendBatchHead and the encoder's
// form read back.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("contid-batch 1 h:b:1.000:1+2 2\n0 h:b:1.000:1 4\nabc\n1 h:b:1.000:2 0\n"))
	f.Add([]byte("contid-batch 1 x 1\n0 y 99999999999\n"))
	f.Add([]byte("contid-batch 1 x 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		batch, frames, ok := ParseBatch(data, nil)
		if !ok {
			return
		}
		if batch == "" || uint64(len(frames)) != batchEvents(data) {
			t.Fatalf("batch %q, %d frames, head says %d", batch, len(frames), batchEvents(data))
		}
		// Written again, the frames give the same data.
		b := AppendBatchHead(nil, batch, uint64(len(frames)))
		for _, fr := range frames {
			b = fmt.Appendf(b, "%d %s %d\n%s", fr.Index, fr.ID, len(fr.Body), fr.Body)
		}
		if _, again, ok := ParseBatch(b, nil); !ok || len(again) != len(frames) {
			t.Fatalf("%q does not read back", b)
		}
	})
}

// FuzzParseSubject: subjects round-trip, and no string panics.
func FuzzParseSubject(f *testing.F) {
	f.Add("contid.h.c.1.2.e")
	f.Add("contid.h.h")
	f.Add("contid.h.c.more.e")
	f.Fuzz(func(t *testing.T, s string) {
		host, c, err := ParseSubject(s)
		if err != nil {
			return
		}
		if got := string(AppendSubject(nil, host, c)); got != s && len(c) <= MaxDepth {
			// Only a canonical subject round-trips (no leading zeros).
			if _, c2, err := ParseSubject(got); err != nil || !contid.Chain(c2).Equal(c) {
				t.Fatalf("%q → %q %v → %q", s, host, c, got)
			}
		}
	})
}

// FuzzSpoolRecord: a spool record that passed its CRC may still be
// damaged (a bug, a disk): any bytes decode to a message or false, and a
// held message resolves or fails, never a panic or a read outside its
// frames. The seeds are records the spool writes.
func FuzzSpoolRecord(f *testing.F) {
	dir := f.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	lines := "type=SYSCALL msg=audit(1700000000.001:7): a=1\ntype=EOE msg=audit(1700000000.001:7): \n"
	if err := os.WriteFile(logPath, []byte(lines), 0o600); err != nil {
		f.Fatal(err)
	}
	lf, err := os.Open(logPath)
	if err != nil {
		f.Fatal(err)
	}
	key, err := keyOf(lf)
	if err != nil {
		f.Fatal(err)
	}
	sp, err := OpenSpool(SpoolConfig{Dir: filepath.Join(dir, "spool"), MaxBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	sp.files[key] = &logFile{key: key, f: lf, refs: 1}
	// A held record as Append writes it (after the frame header).
	rec := binary.LittleEndian.AppendUint16(nil, heldMark)
	rec = binary.LittleEndian.AppendUint64(rec, key.Dev)
	rec = binary.LittleEndian.AppendUint64(rec, key.Ino)
	rec = binary.LittleEndian.AppendUint32(rec, 1)
	rec = binary.LittleEndian.AppendUint16(rec, 3)
	rec = append(rec, "id1"...)
	rec = binary.LittleEndian.AppendUint16(rec, 4)
	rec = append(rec, "subj"...)
	head := "contid-batch 1 h:b:1700000000.001:7+1 1\n"
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(head)))
	rec = append(rec, head...)
	fl := fmt.Sprintf("0 h:b:1700000000.001:7 %d\n", len(lines))
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(fl)))
	rec = append(rec, fl...)
	rec = binary.LittleEndian.AppendUint64(rec, 0)
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(lines)))
	f.Add(rec)
	f.Add([]byte("\x03\x00id1\x04\x00subjcontid-batch 1 x 1\n"))
	f.Add(rec[:len(rec)-5])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := decode(b)
		if !ok || !m.held {
			return
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if sp.files[m.key] == nil {
			return // not found: the path TestHeldAfterRestart takes
		}
		held := m.Data
		n := heldBytes(held)
		if err := sp.resolve(&m); err == nil {
			// The held form less its lengths and places, plus the lines.
			frames := 0
			walkHeld(held, nil, func([]byte, int64, int) error { frames++; return nil })
			if want := len(held) - 4 - 16*frames + int(n); len(m.Data) != want {
				t.Fatalf("resolved to %d bytes, want %d", len(m.Data), want)
			}
		}
	})
}
