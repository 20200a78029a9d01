package search

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/contid/contid/internal/records"
	"syscall"
)

// Index layout constants.
const (
	// DefaultBlockSize is the log bytes per index block: small enough that
	// one container among a thousand is absent from most blocks, large
	// enough that the index stays under 1% of the log (docs/search.md).
	DefaultBlockSize = 16 << 10
	// maxPhantoms bounds the open events a checkpoint may carry; a line
	// with more open is not made a checkpoint (the block grows instead).
	maxPhantoms = 64
	// hashLen is how many bytes at the head of the log and before the end
	// of what is covered the index hashes, to notice a file that is not
	// the one indexed (an inode reused) or that was rewritten.
	hashLen = 4096
	// IndexDirName is the directory beside a log that holds its sidecars,
	// one per log file, named by device and inode so that they follow
	// the files through rotation (a rename keeps the inode).
	IndexDirName = ".contid-index"
)

// block is one block of an index: the summary of the events whose first
// line lies in [off, next block's off) and the grouper state at off.
type block struct {
	off     int64
	open    []Phantom
	openRaw []byte // open, encoded, in a decoded sidecar: decoded on use
	// tails are the lines after the block's end that belong to its events,
	// in file order: with them, reading the block needs nothing after it.
	tails          []tailLine
	tailsRaw       []byte
	minSec, maxSec int64
	minSer, maxSer uint64
	events         uint32
	skipped        uint64              // malformed lines before off (while building)
	bloom          []byte              // a Bloom filter, 4 hashes
	terms          map[uint64]struct{} // while building: the terms' hashes
	done           bool
}

// Index is a log file's sidecar.
type Index struct {
	dev, ino  uint64
	blockSize int64
	covered   int64  // the log's bytes the blocks cover
	skipped   uint64 // malformed lines in them
	headHash  uint64
	tailHash  uint64
	blocks    []*block
	tail      []Phantom // grouper state at covered
	// final, when not nil, summarises the events from covered to the end
	// of the file as it was at finalSize bytes (the end closing the events
	// still open): valid while the file keeps that size, as rotated files
	// do. finalEnd is the end of its complete lines (a torn line follows).
	final               *block
	finalSize, finalEnd int64
	// A decoded sidecar keeps its block table and variable area as read;
	// entry decodes one block on use, decodeAll all of them (to extend).
	tab, vars []byte
	n         int
	// minSec and maxSec bound the time of every event the sidecar
	// describes (blocks and final block), from its header.
	minSec, maxSec int64
	// checked marks the blocks whose variable area (phantoms, filter,
	// tail lines) was found to match its checksum (1) or not (2); a lazily
	// decoded sidecar checks each block when it is first used.
	checked []uint8
	// outside: only the header was read, and it shows that no event of
	// the file can match the query's time.
	outside bool
}

// allOK reports whether every block's variable area matches its checksum.
func (ix *Index) allOK() bool {
	for i := 0; i < ix.n+btoi(ix.final != nil); i++ {
		if !ix.blockOK(i) {
			return false
		}
	}
	return true
}

// nblocks returns the number of blocks.
func (ix *Index) nblocks() int {
	if ix.tab != nil {
		return ix.n
	}
	return len(ix.blocks)
}

// entry decodes block i of a decoded sidecar into blk, its filter, tails
// and phantoms as views of the sidecar; false if the entry is malformed.
func (ix *Index) entry(i int, blk *block) bool {
	le := binary.LittleEndian
	e := ix.tab[i*entrySize : (i+1)*entrySize]
	*blk = block{off: int64(le.Uint64(e)), minSec: int64(le.Uint64(e[8:])), maxSec: int64(le.Uint64(e[16:])),
		minSer: le.Uint64(e[24:]), maxSer: le.Uint64(e[32:]), events: le.Uint32(e[40:]), done: true}
	vo, pl, bl, tl := le.Uint64(e[44:]), uint64(le.Uint32(e[52:])), uint64(le.Uint32(e[56:])), uint64(le.Uint32(e[60:]))
	vars := ix.vars
	if vo > uint64(len(vars)) || pl+bl+tl > uint64(len(vars))-vo {
		return false
	}
	blk.openRaw = vars[vo : vo+pl : vo+pl]
	blk.bloom = vars[vo+pl : vo+pl+bl : vo+pl+bl]
	blk.tailsRaw = vars[vo+pl+bl : vo+pl+bl+tl : vo+pl+bl+tl]
	return tl >= 4 && uint64(le.Uint32(blk.tailsRaw))*12+4 == tl
}

// blockOK reports whether block i's variable area matches its checksum
// (the final block is block n).
func (ix *Index) blockOK(i int) bool {
	if ix.checked == nil {
		return true // decoded whole: every block was checked
	}
	if ix.checked[i] == 0 {
		var blk block
		ix.checked[i] = 2
		if ix.entry(i, &blk) {
			e := ix.tab[i*entrySize : (i+1)*entrySize]
			le := binary.LittleEndian
			vo, l := le.Uint64(e[44:]), uint64(le.Uint32(e[52:]))+uint64(le.Uint32(e[56:]))+uint64(le.Uint32(e[60:]))
			if crc32.Checksum(ix.vars[vo:vo+l], crcTable) == le.Uint32(e[64:]) {
				ix.checked[i] = 1
			}
		}
	}
	return ix.checked[i] == 1
}

// decodeAll decodes every block of a decoded sidecar into blocks.
func (ix *Index) decodeAll() {
	if ix.tab == nil {
		return
	}
	bs := make([]block, ix.n)
	ix.blocks = make([]*block, ix.n)
	for i := range bs {
		ix.entry(i, &bs[i])
		ix.blocks[i] = &bs[i]
	}
	ix.tab, ix.vars, ix.checked = nil, nil, nil
}

// Builder builds or extends an index from the lines and events of a scan
// that starts at a checkpoint. Feed it with Line before each line is
// given to the Grouper, Event with each event the Grouper returns, and End
// at the end of the complete lines (before Flush).
type Builder struct {
	ix       *Index
	cur      *block // the block being filled
	pending  int    // blocks from here on may still get events
	ended    bool
	final    *block
	finalEnd int64
	base     uint64 // malformed lines before the scan's start
}

// NewBuilder starts an index for a file from its start.
func NewBuilder(blockSize int64) *Builder {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	ix := &Index{blockSize: blockSize}
	b := &Builder{ix: ix}
	b.startBlock(0, nil, 0)
	return b
}

// extend continues ix from its covered end.
func (ix *Index) extend() *Builder {
	ix.decodeAll()
	ix.final = nil
	b := &Builder{ix: ix, pending: len(ix.blocks)}
	b.startBlock(ix.covered, ix.tail, ix.skipped)
	b.base = ix.skipped
	return b
}

func (b *Builder) startBlock(off int64, open []Phantom, skipped uint64) {
	blk := &block{off: off, open: open, skipped: skipped, minSec: 1<<63 - 1, maxSec: -1 << 63, minSer: 1<<64 - 1, terms: map[uint64]struct{}{}}
	b.ix.blocks = append(b.ix.blocks, blk)
	b.cur = blk
}

func (b *Builder) line(off int64, g *Grouper) {
	if b.pending > len(b.ix.blocks)-1 {
		b.pending = len(b.ix.blocks) - 1
	}
	if off-b.cur.off >= b.ix.blockSize && g.OpenCount() <= maxPhantoms {
		b.startBlock(off, g.Open(), b.base+g.Stats().Malformed)
	}
	b.finish(g.OldestOpen())
}

// finish completes the blocks no event can be added to any more: those
// that end before the oldest event not yet returned.
func (b *Builder) finish(oldest int64) {
	bl := b.ix.blocks
	for b.pending < len(bl)-1 && (oldest < 0 || bl[b.pending+1].off <= oldest) {
		bl[b.pending].seal()
		b.pending++
	}
}

func (b *Builder) event(ev *Event) {
	if b.ended {
		if b.final != nil {
			b.final.add(ev)
		}
		return
	}
	bl := b.ix.blocks
	i := len(bl) - 1
	for i > 0 && bl[i].off > ev.First {
		i--
	}
	blk := bl[i]
	if blk.done || ev.First < blk.off {
		return // before the part being built (cannot happen) or sealed
	}
	blk.add(ev)
	if i+1 < len(bl) { // lines after the block's end: its tail
		end := bl[i+1].off
		for k, o := range ev.Offs {
			if o >= end {
				blk.tails = append(blk.tails, tailLine{o, ev.lineLen(k)})
			}
		}
	}
}

// tailLine is a line after a block's end that belongs to an event begun
// in the block.
type tailLine struct {
	off int64
	n   int32
}

func (blk *block) add(ev *Event) {
	blk.events++
	blk.minSec = min(blk.minSec, ev.Stamp.Sec)
	blk.maxSec = max(blk.maxSec, ev.Stamp.Sec)
	blk.minSer = min(blk.minSer, ev.Stamp.Serial)
	blk.maxSer = max(blk.maxSer, ev.Stamp.Serial)
	if ev.noted {
		// Terms given with the lines (LogIndex): their types come from
		// the headers, the rest as given.
		for i, t := range ev.types {
			if i == 0 || t != ev.types[i-1] {
				blk.terms[typeHash(t)] = struct{}{}
			}
		}
		for _, h := range ev.th {
			blk.terms[h] = struct{}{}
		}
		return
	}
	for _, t := range eventTerms(ev) {
		blk.terms[termHash(t)] = struct{}{}
	}
}

// end is called at the end of the complete lines, at offset off, before
// the grouper flushes: the events the end of the file closes are not
// indexed, as they may go on when the log grows.
func (b *Builder) end(off int64, g *Grouper) {
	all := b.ix.blocks
	b.ix = b.snapshot(off, g)
	b.ended = true
	// The events from covered on, those ended by the rules so far and
	// those the end of the file ends, make the final block.
	fin := &block{off: b.ix.covered, minSec: 1<<63 - 1, maxSec: -1 << 63, minSer: 1<<64 - 1, terms: map[uint64]struct{}{}}
	for _, blk := range all[len(b.ix.blocks):] {
		fin.merge(blk)
	}
	b.final, b.finalEnd = fin, off
}

// flushed completes the final block once the grouper has flushed the
// file of size bytes.
func (b *Builder) flushed(size int64) {
	if b.final == nil {
		return
	}
	b.final.seal()
	b.ix.final, b.ix.finalSize, b.ix.finalEnd = b.final, size, b.finalEnd
}

func (blk *block) merge(o *block) {
	blk.events += o.events
	blk.minSec, blk.maxSec = min(blk.minSec, o.minSec), max(blk.maxSec, o.maxSec)
	blk.minSer, blk.maxSer = min(blk.minSer, o.minSer), max(blk.maxSer, o.maxSer)
	for t := range o.terms {
		blk.terms[t] = struct{}{}
	}
}

// snapshot returns the index of what is final at offset off (the end of
// the complete lines read so far): it covers up to the last checkpoint
// before which every event has ended by the grouping rules. Those blocks
// are sealed; the builder can go on.
func (b *Builder) snapshot(off int64, g *Grouper) *Index {
	open := g.Open()
	if len(open) == 0 && off > b.cur.off {
		b.startBlock(off, nil, b.base+g.Stats().Malformed) // a checkpoint of its own
	}
	limit := off
	if len(open) > 0 {
		limit = open[0].First
	}
	bl := b.ix.blocks
	n := len(bl) - 1
	for n > 0 && bl[n].off > limit {
		n--
	}
	for _, blk := range bl[:n] {
		blk.seal()
	}
	ix := *b.ix
	ix.blocks = bl[:n:n]
	ix.covered = bl[n].off
	ix.tail = bl[n].open
	ix.skipped = bl[n].skipped
	return &ix
}

func (blk *block) seal() {
	if blk.done {
		return
	}
	blk.done = true
	blk.bloom = newBloom(len(blk.terms))
	for h := range blk.terms {
		bloomAddHash(blk.bloom, h)
	}
	blk.terms = nil
}

// eventTerms are what the Bloom filters hold: every element of every
// chain, the keys and the record types. Only the lines that can hold a
// chain (CONTAINER_ID and contid's own records) or a key (their text holds
// "key=") are parsed: the result is that of Chains and Keys.
func eventTerms(ev *Event) []string {
	var recs []records.Record
	var out []string
	seen := map[records.Type]bool{}
	for i, l := range ev.Lines {
		t := ev.types[i]
		if !seen[t] {
			seen[t] = true
			out = append(out, "t"+strconv.Itoa(int(t)))
		}
		if ev.parsed {
			continue
		}
		if t >= records.ContainerOp && t <= records.ContidLoss || strings.Contains(l, "key=") {
			if r, err := records.ParseLine(l); err == nil {
				recs = append(recs, r)
			}
		}
	}
	if ev.parsed {
		recs = ev.Records
	}
	for _, c := range chainsOf(recs) {
		for _, id := range c {
			out = append(out, "c"+strconv.FormatUint(uint64(id), 10))
		}
	}
	for _, k := range keysOf(recs) {
		out = append(out, "k"+k)
	}
	return out
}

func newBloom(n int) []byte {
	bits := max(64, n*16) // ~0.25% false positives with 4 hashes
	return make([]byte, (bits+63)/64*8)
}

// termHash is a term's FNV-1a hash (64 bits), from which the Bloom
// filters' bits are derived.
func termHash(t string) uint64 { return fnvAdd(fnvOffset, t) }

const fnvOffset = 14695981039346656037

func fnvAdd(v uint64, t string) uint64 {
	for i := 0; i < len(t); i++ {
		v ^= uint64(t[i])
		v *= 1099511628211
	}
	return v
}

func fnvAddBytes(v uint64, t []byte) uint64 {
	for _, c := range t {
		v ^= uint64(c)
		v *= 1099511628211
	}
	return v
}

// typeHash is termHash("t"+decimal type), without the string.
func typeHash(t records.Type) uint64 {
	var b [12]byte
	return fnvAddBytes(fnvAdd(fnvOffset, "t"), strconv.AppendUint(b[:0], uint64(t), 10))
}

// contidHash is termHash("c"+decimal id), without the string.
func contidHash(id uint64) uint64 {
	var b [24]byte
	return fnvAddBytes(fnvAdd(fnvOffset, "c"), strconv.AppendUint(b[:0], id, 10))
}

func bloomHashes(t string) (uint64, uint64) {
	v := termHash(t)
	return v, (v >> 33) | 1
}

func bloomAddHash(bf []byte, v uint64) {
	h1, h2 := v, (v>>33)|1
	m := uint64(len(bf) * 8)
	for i := uint64(0); i < 4; i++ {
		bit := (h1 + i*h2) % m
		bf[bit/8] |= 1 << (bit % 8)
	}
}

func bloomHas(bf []byte, t string) bool {
	if len(bf) == 0 {
		return false
	}
	h1, h2 := bloomHashes(t)
	m := uint64(len(bf) * 8)
	for i := uint64(0); i < 4; i++ {
		bit := (h1 + i*h2) % m
		if bf[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

// mayMatch reports whether the block can hold an event q matches.
func (blk *block) mayMatch(q *Query) bool {
	return summaryMatch(q, blk.events, blk.minSec, blk.maxSec, blk.minSer, blk.maxSer) && bloomMatch(q, blk.bloom)
}

func summaryMatch(q *Query, events uint32, minSec, maxSec int64, minSer, maxSer uint64) bool {
	if events == 0 || q.HasStart && maxSec < q.Start || q.HasEnd && minSec > q.End {
		return false
	}
	if len(q.Serials) > 0 {
		in := false
		for _, s := range q.Serials {
			in = in || s >= minSer && s <= maxSer
		}
		return in
	}
	return true
}

func bloomMatch(q *Query, bloom []byte) bool {
	t := q.terms()
	anyTerm := func(vals []string) bool {
		for _, v := range vals {
			if bloomHas(bloom, v) {
				return true
			}
		}
		return false
	}
	return (len(t.contids) == 0 || anyTerm(t.contids)) && (len(t.keys) == 0 || anyTerm(t.keys)) && (len(t.types) == 0 || anyTerm(t.types))
}

// queryTerms are a query's criteria as Bloom filter terms.
type queryTerms struct {
	contids, keys, types []string
	done                 bool
}

func (q *Query) terms() *queryTerms {
	t := &q.qterms
	if !t.done {
		t.done = true
		for _, id := range q.Contids {
			t.contids = append(t.contids, "c"+strconv.FormatUint(uint64(id), 10))
		}
		for _, k := range q.Keys {
			t.keys = append(t.keys, "k"+k)
		}
		for _, ty := range q.Types {
			t.types = append(t.types, "t"+strconv.Itoa(int(ty)))
		}
	}
	return t
}

// mayMatchAt is mayMatch for block i of a decoded sidecar, read in place.
func (ix *Index) mayMatchAt(i int, q *Query) bool {
	le := binary.LittleEndian
	e := ix.tab[i*entrySize : (i+1)*entrySize]
	if !summaryMatch(q, le.Uint32(e[40:]), int64(le.Uint64(e[8:])), int64(le.Uint64(e[16:])), le.Uint64(e[24:]), le.Uint64(e[32:])) {
		return false
	}
	if !ix.blockOK(i) {
		return true // the caller finds it bad before reading anything
	}
	vo, pl, bl := le.Uint64(e[44:]), uint64(le.Uint32(e[52:])), uint64(le.Uint32(e[56:]))
	return bloomMatch(q, ix.vars[vo+pl:vo+pl+bl]) // bounds checked by UnmarshalIndex
}

// The sidecar's layout, little-endian, version 4:
//
//	header, hdrSize bytes:
//	  magic "CIDX\0\0\0\4"
//	  dev ino blockSize covered skipped headHash tailHash    7 × u64
//	  finalSize finalEnd (0 0: no final block)                2 × u64
//	  minSec maxSec of every event described                  2 × i64
//	  n u32 (entries, the final block's included)
//	  tailLen u32, tailCRC u32 (the phantoms at covered, first in the variable area)
//	  varsLen u64, tableCRC u32
//	  CRC-32C of the header before it, u32
//	n entries of entrySize bytes:
//	  off minSec maxSec minSer maxSer  5 × u64
//	  events u32, varOff u64, phantomsLen u32, bloomLen u32, tailsLen u32
//	  CRC-32C of the block's phantoms, filter and tail lines, u32
//	the variable area (varsLen bytes): the tail phantoms, then each block's
//	  phantoms, Bloom filter and tail lines (n u32, then n × offset u64,
//	  length u32)
//
// Each part has its own checksum so that a search reads and checks only
// what it uses: the header alone for a file whose time range is outside
// the query, the table, and the variable area of the blocks it looks at.
// The entries have a fixed size; the final block, when there is one, is
// the last.
const entrySize = 5*8 + 4 + 8 + 4 + 4 + 4 + 4

const hdrSize = 8 + 11*8 + 4 + 4 + 4 + 8 + 4 + 4

var indexMagic = [8]byte{'C', 'I', 'D', 'X', 0, 0, 0, 4}

// Marshal encodes the index.
func (ix *Index) Marshal() []byte {
	ix.decodeAll()
	le := binary.LittleEndian
	blocks := ix.blocks
	if ix.final != nil {
		blocks = append(blocks[:len(blocks):len(blocks)], ix.final)
	}
	minSec, maxSec := int64(1<<63-1), int64(-1<<63)
	for _, blk := range blocks {
		if blk.events > 0 {
			minSec, maxSec = min(minSec, blk.minSec), max(maxSec, blk.maxSec)
		}
	}
	vars := appendPhantoms(nil, ix.tail)
	tailLen := len(vars)
	tab := make([]byte, 0, len(blocks)*entrySize)
	for _, blk := range blocks {
		for _, v := range []uint64{uint64(blk.off), uint64(blk.minSec), uint64(blk.maxSec), blk.minSer, blk.maxSer} {
			tab = le.AppendUint64(tab, v)
		}
		tab = le.AppendUint32(tab, blk.events)
		tab = le.AppendUint64(tab, uint64(len(vars)))
		start := len(vars)
		vars = appendPhantoms(vars, blk.phantoms())
		tab = le.AppendUint32(tab, uint32(len(vars)-start))
		tab = le.AppendUint32(tab, uint32(len(blk.bloom)))
		vars = append(vars, blk.bloom...)
		n := len(vars)
		ts := blk.tailLines()
		vars = le.AppendUint32(vars, uint32(len(ts)))
		for _, t := range ts {
			vars = le.AppendUint64(vars, uint64(t.off))
			vars = le.AppendUint32(vars, uint32(t.n))
		}
		tab = le.AppendUint32(tab, uint32(len(vars)-n))
		tab = le.AppendUint32(tab, crc32.Checksum(vars[start:], crcTable))
	}
	b := make([]byte, 0, hdrSize+len(tab)+len(vars))
	b = append(b, indexMagic[:]...)
	for _, v := range []uint64{ix.dev, ix.ino, uint64(ix.blockSize), uint64(ix.covered), ix.skipped, ix.headHash, ix.tailHash,
		uint64(ix.finalSize), uint64(ix.finalEnd), uint64(minSec), uint64(maxSec)} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, uint32(len(blocks)))
	b = le.AppendUint32(b, uint32(tailLen))
	b = le.AppendUint32(b, crc32.Checksum(vars[:tailLen], crcTable))
	b = le.AppendUint64(b, uint64(len(vars)))
	b = le.AppendUint32(b, crc32.Checksum(tab, crcTable))
	b = le.AppendUint32(b, crc32.Checksum(b, crcTable))
	b = append(b, tab...)
	return append(b, vars...)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func appendPhantoms(b []byte, ps []Phantom) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = le.AppendUint32(b, uint32(len(p.Node)))
		b = append(b, p.Node...)
		b = le.AppendUint64(b, uint64(p.Stamp.Sec))
		b = le.AppendUint32(b, p.Stamp.Msec)
		b = le.AppendUint64(b, p.Stamp.Serial)
		b = le.AppendUint64(b, uint64(p.First))
		if p.Terminal {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

// ErrBadIndex is returned for a sidecar that is torn, corrupt or of
// another format version.
var ErrBadIndex = errors.New("search: bad index")

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) take(n int) []byte {
	if d.err || n < 0 || n > len(d.b) {
		d.err = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) phantoms() []Phantom {
	n := int(d.u32())
	if n > maxPhantoms+1 {
		d.err = true
		return nil
	}
	var ps []Phantom
	for i := 0; i < n && !d.err; i++ {
		var p Phantom
		p.Node = string(d.take(int(d.u32())))
		p.Stamp.Sec = int64(d.u64())
		p.Stamp.Msec = d.u32()
		p.Stamp.Serial = d.u64()
		p.First = int64(d.u64())
		t := d.take(1)
		p.Terminal = len(t) == 1 && t[0] == 1
		ps = append(ps, p)
	}
	return ps
}

// header is a sidecar's header, checked.
type header struct {
	ix              *Index
	n, tailLen      int
	tailCRC, tabCRC uint32
	varsLen         uint64
}

// decodeHeader decodes and checks a sidecar's header (hdrSize bytes).
func decodeHeader(b []byte) (*header, error) {
	if len(b) < hdrSize || !bytes.Equal(b[:len(indexMagic)], indexMagic[:]) {
		return nil, ErrBadIndex
	}
	le := binary.LittleEndian
	if crc32.Checksum(b[:hdrSize-4], crcTable) != le.Uint32(b[hdrSize-4:]) {
		return nil, ErrBadIndex
	}
	d := &decoder{b: b[len(indexMagic) : hdrSize-4]}
	ix := &Index{dev: d.u64(), ino: d.u64(), blockSize: int64(d.u64()), covered: int64(d.u64()), skipped: d.u64(),
		headHash: d.u64(), tailHash: d.u64(), finalSize: int64(d.u64()), finalEnd: int64(d.u64()),
		minSec: int64(d.u64()), maxSec: int64(d.u64())}
	h := &header{ix: ix, n: int(d.u32()), tailLen: int(d.u32()), tailCRC: d.u32(), varsLen: d.u64(), tabCRC: d.u32()}
	if d.err || ix.covered < 0 || ix.blockSize <= 0 || h.n < 0 || h.n > 1<<30/entrySize || h.varsLen > 1<<40 || uint64(h.tailLen) > h.varsLen {
		return nil, ErrBadIndex
	}
	return h, nil
}

// size is the size of the sidecar the header describes.
func (h *header) size() int64 { return hdrSize + int64(h.n)*entrySize + int64(h.varsLen) }

// UnmarshalIndex decodes a sidecar; anything but a well-formed index whose
// checksums all match is ErrBadIndex. The Bloom filters and the phantoms
// of the blocks stay views of data, decoded when used.
func UnmarshalIndex(data []byte) (*Index, error) {
	ix, err := unmarshalIndex(data)
	if err != nil || !ix.allOK() {
		return nil, ErrBadIndex
	}
	ix.checked = nil
	return ix, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// unmarshalIndex decodes a sidecar and checks its header, table and tail
// phantoms; the variable areas of the blocks are left to check when used
// (blockOK).
func unmarshalIndex(data []byte) (*Index, error) {
	h, err := decodeHeader(data)
	if err != nil || int64(len(data)) != h.size() {
		return nil, ErrBadIndex
	}
	ix, n := h.ix, h.n
	tab := data[hdrSize : hdrSize+n*entrySize]
	vars := data[hdrSize+n*entrySize:]
	if crc32.Checksum(tab, crcTable) != h.tabCRC || crc32.Checksum(vars[:h.tailLen], crcTable) != h.tailCRC {
		return nil, ErrBadIndex
	}
	d := &decoder{b: vars[:h.tailLen]}
	if ix.tail = d.phantoms(); d.err || len(d.b) != 0 {
		return nil, ErrBadIndex
	}
	ix.tab, ix.vars, ix.n = tab, vars, n
	ix.checked = make([]uint8, n)
	prev := int64(-1)
	var blk block
	for i := 0; i < n; i++ {
		if !ix.entry(i, &blk) {
			return nil, ErrBadIndex
		}
		last := i == n-1 && ix.finalSize > 0
		if blk.off < prev || blk.off == prev && !last || blk.off > ix.covered {
			return nil, ErrBadIndex
		}
		prev = blk.off
	}
	if ix.finalSize > 0 {
		fin := &block{}
		if n == 0 || ix.finalEnd < ix.covered || ix.finalSize < ix.finalEnd || !ix.entry(n-1, fin) || fin.off != ix.covered {
			return nil, ErrBadIndex
		}
		ix.final = fin
		ix.n = n - 1
	}
	return ix, nil
}

// hashes returns the hashes of the log's head and of the bytes before
// covered.
func hashes(f *os.File, covered int64) (uint64, uint64, error) {
	read := func(off, n int64) (uint64, error) {
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
			return 0, err
		}
		h := fnv.New64a()
		h.Write(buf)
		return h.Sum64(), nil
	}
	head, err := read(0, min(covered, hashLen))
	if err != nil {
		return 0, 0, err
	}
	from := max(0, covered-hashLen)
	tail, err := read(from, covered-from)
	return head, tail, err
}

// sidecarPath returns where the index of the file with this identity
// lives.
func sidecarPath(logPath string, dev, ino uint64) string {
	return filepath.Join(filepath.Dir(logPath), IndexDirName, sidecarName(dev, ino))
}

func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// phantoms returns the grouper state at the block's start.
func (blk *block) phantoms() []Phantom {
	if blk.open == nil && blk.openRaw != nil {
		d := &decoder{b: blk.openRaw}
		blk.open = d.phantoms()
	}
	return blk.open
}

// tailLines returns the block's tail lines.
func (blk *block) tailLines() []tailLine {
	if blk.tails == nil && len(blk.tailsRaw) > 4 {
		le := binary.LittleEndian
		n := int(le.Uint32(blk.tailsRaw))
		blk.tails = make([]tailLine, n)
		for i := range blk.tails {
			e := blk.tailsRaw[4+12*i:]
			blk.tails[i] = tailLine{int64(le.Uint64(e)), int32(le.Uint32(e[8:]))}
		}
	}
	return blk.tails
}
