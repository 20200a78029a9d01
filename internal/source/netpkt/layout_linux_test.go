package netpkt

import (
	"encoding/binary"
	"testing"
)

// TestLayout checks pairSize and the offsets decode reads against the Go
// type bpf2go generated from the object's BTF.
func TestLayout(t *testing.T) {
	var e netpktPairEvent
	if n := binary.Size(e); n != pairSize {
		t.Fatalf("struct pair_event is %d bytes, decode reads %d", n, pairSize)
	}
	e = netpktPairEvent{Sec: 1, Nsec: 2_000_000, NsId: 3, NsInum: 4, Serial: 5, Flags: flagNetns}
	b, err := binary.Append(nil, binary.NativeEndian, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(b)
	want := Pair{Sec: 1, Msec: 2, NetnsID: 3, NetnsIno: 4, Serial: 5, Known: true}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
}
