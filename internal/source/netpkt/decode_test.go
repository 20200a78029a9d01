package netpkt

import (
	"encoding/binary"
	"testing"
)

func sample(sec, nsec, id uint64, ino, serial, flags uint32) []byte {
	b := make([]byte, pairSize)
	le := binary.NativeEndian
	le.PutUint64(b[0:], sec)
	le.PutUint64(b[8:], nsec)
	le.PutUint64(b[16:], id)
	le.PutUint32(b[24:], ino)
	le.PutUint32(b[28:], serial)
	le.PutUint32(b[32:], flags)
	return b
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want Pair
		err  bool
	}{
		{"namespace", sample(1796356643, 694_999_999, 7, 4026532174, 176084, flagNetns),
			Pair{Serial: 176084, Sec: 1796356643, Msec: 694, Known: true, NetnsID: 7, NetnsIno: 4026532174}, false},
		{"no traversal drops stray ids", sample(1, 0, 7, 9, 2, flagNoTop),
			Pair{Serial: 2, Sec: 1, Why: WhyNoTraversal}, false},
		{"foreign task", sample(1, 0, 0, 0, 3, flagForeign), Pair{Serial: 3, Sec: 1, Why: WhyForeignTask}, false},
		{"stale entry", sample(1, 0, 7, 9, 4, flagStale), Pair{Serial: 4, Sec: 1, Why: WhyStale}, false},
		{"unknown flags", sample(1, 0, 0, 0, 3, 3), Pair{}, true},
		{"short", make([]byte, pairSize-1), Pair{}, true},
	}
	for _, tc := range tests {
		got, err := decode(tc.b)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
