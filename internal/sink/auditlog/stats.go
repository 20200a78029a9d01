package auditlog

import "sync/atomic"

// Stats are a Writer's counters since Open. Every line given to WriteLine
// ends up counted in exactly one of Lines, Buffered, Queued or Dropped (a
// line whose write failed but which the file shows complete counts in
// Lines).
type Stats struct {
	Lines        uint64 // lines handed to the kernel (write(2) succeeded)
	Bytes        uint64 // bytes handed to the kernel, '\n's and tail repairs included
	Buffered     int    // lines accepted and still in the user-space buffer (FlushNone)
	Queued       int    // lines kept in memory while the disk is full (Config.QueueBytes)
	Rotations    uint64 // completed rotations
	RotateErrors uint64 // failed rotations and reopens
	WriteErrors  uint64 // failed write(2) calls
	SyncErrors   uint64 // failed fsync calls, background ones included
	TailRepairs  uint64 // '\n's written to end a partial last line left by a crash or another writer
	Dropped      Dropped
	Suspended    bool // MaxAction Suspend is in force
	// DiskFull: the last write failed for lack of space (ENOSPC, EDQUOT)
	// and none has succeeded since; lines are queued or dropped.
	DiskFull bool
}

// Dropped counts lines that were not written, by reason.
type Dropped struct {
	BadLine     uint64 // contained '\n' or '\r' (ErrBadLine)
	Suspended   uint64 // refused while suspended (ErrSuspended)
	WriteFailed uint64 // a write failed (disk full, I/O error); the caller got the error, or Close did for buffered lines
	Closed      uint64 // given after Close (ErrClosed)
	DiskFull    uint64 // the disk was full and the queue too, or still full at Close (ErrDiskFull)
}

// Total is the number of dropped lines.
func (d Dropped) Total() uint64 {
	return d.BadLine + d.Suspended + d.WriteFailed + d.Closed + d.DiskFull
}

// counters are atomics so that Stats can be read from any goroutine
// without waiting behind a slow write.
type counters struct {
	lines, bytes, rotations, rotateErrors, writeErrors, syncErrors, tailRepairs atomic.Uint64
	badLine, suspended, writeFailed, closed, diskFull                           atomic.Uint64
	buffered, queued                                                            atomic.Int64
	isSuspended, isDiskFull                                                     atomic.Bool
}

func (c *counters) snapshot() Stats {
	return Stats{
		Lines:        c.lines.Load(),
		Bytes:        c.bytes.Load(),
		Buffered:     int(c.buffered.Load()),
		Queued:       int(c.queued.Load()),
		Rotations:    c.rotations.Load(),
		RotateErrors: c.rotateErrors.Load(),
		WriteErrors:  c.writeErrors.Load(),
		SyncErrors:   c.syncErrors.Load(),
		TailRepairs:  c.tailRepairs.Load(),
		Dropped: Dropped{
			BadLine:     c.badLine.Load(),
			Suspended:   c.suspended.Load(),
			WriteFailed: c.writeFailed.Load(),
			Closed:      c.closed.Load(),
			DiskFull:    c.diskFull.Load(),
		},
		Suspended: c.isSuspended.Load(),
		DiskFull:  c.isDiskFull.Load(),
	}
}
