package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
)

// Writer appends lines to an audit log. See the package documentation for
// its guarantees.
type Writer struct {
	cfg  Config
	base *slog.Logger // as given to Open
	log  *slog.Logger // base with the path
	st   counters

	mu        sync.Mutex
	f         *os.File // nil while suspended and after Close
	size      int64    // bytes in f as far as this Writer knows
	buf       []byte   // FlushNone: whole lines not yet written
	scratch   []byte   // other policies: line+'\n'
	pending   int      // lines in buf (FlushNone)
	unsynced  int      // lines written since the last fsync (incremental policies)
	needNL    bool     // f does not end with '\n': write one before the next line
	queue     []byte   // whole lines a full disk refused, written before any later line
	queued    int      // lines in queue
	fullLost  uint64   // lines dropped since the disk filled, for the log when it resumes
	stale     bool     // f is no longer at cfg.Path (a reopen failed): open cfg.Path before the next line
	warned    bool     // Ignore: the size warning was logged for this file
	suspended bool
	closed    bool

	// FlushIncrementalAsync: fsync requests to the background goroutine,
	// coalesced in a buffer of one, and its error for the owner to report.
	// Both channels are nil under the other policies.
	syncReq  chan *os.File
	syncDone chan struct{}
	asyncErr atomic.Pointer[error]

	obs Observer // nil: none
}

// Observer is told, in file order, of the whole lines that reach the log's
// file and of a file the Writer stops writing, so that it can keep
// something in step with the file (a search index). It is called with the
// Writer's lock held and must not call the Writer.
type Observer interface {
	// Appended: data, whole lines, is now in f from offset off. Only
	// bytes the file holds are reported: a line cut off after a failed
	// write, queued on a full disk or dropped is not (a queued line is
	// reported when it is written). f is the Writer's descriptor, opened
	// at f.Name(); it may be read, not kept.
	Appended(f *os.File, off int64, data []byte)
	// Retiring: f is about to be closed (rotation, reopen, Close); no
	// more lines go to it.
	Retiring(f *os.File)
}

// Observers is an Observer telling each of its members, in order.
type Observers []Observer

// Appended tells each member.
func (all Observers) Appended(f *os.File, off int64, data []byte) {
	for _, o := range all {
		o.Appended(f, off, data)
	}
}

// Retiring tells each member.
func (all Observers) Retiring(f *os.File) {
	for _, o := range all {
		o.Retiring(f)
	}
}

// Observe makes o the Writer's Observer (nil: none). The first lines it
// is told of may start past what it knows of the file.
func (w *Writer) Observe(o Observer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.obs = o
}

func (w *Writer) appended(off int64, data []byte) {
	if w.obs != nil && len(data) > 0 {
		w.obs.Appended(w.f, off, data)
	}
}

// Open opens (creating if needed) the log at cfg.Path for appending and
// returns its Writer. If the file does not end with '\n' (a crash in the
// middle of a write, or another writer), Open first writes a '\n' so the
// next line starts clean, and counts it in Stats.TailRepairs. log may be
// nil.
func Open(cfg Config, log *slog.Logger) (*Writer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	w := &Writer{cfg: cfg, base: log, log: log.With("log", cfg.Path)}
	if cfg.Flush == FlushNone {
		w.buf = make([]byte, 0, bufferSize)
	}
	f, size, err := w.openFile()
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	w.f, w.size = f, size
	if err := w.checkTail(); err != nil {
		f.Close()
		return nil, err
	}
	if w.needNL {
		// A failure here is not fatal: the next line tries again and
		// reports it.
		_ = w.repairTail()
	}
	w.startSyncLoop()
	return w, nil
}

// WriteLine appends line and a '\n' to the log. line must not contain
// '\n' or '\r': such a line is refused with ErrBadLine and nothing is
// written, so no caller can tear a line or forge one.
//
// Except under FlushNone, the line (with its '\n') is handed to the kernel
// in one write(2) on an O_APPEND descriptor before WriteLine returns, and
// made durable as the policy says. Under FlushNone it is appended to the
// buffer, which holds only whole lines and is written whole when full.
//
// A nil error means the line was accepted. An error wrapping ErrDropped
// means it was not (it is counted in Stats.Dropped); any other error
// (ErrRotate, ErrSync) reports a problem met while writing it all the
// same. A failed write (errors.Is(err, syscall.ENOSPC) for a full disk,
// EIO, …) is counted in Stats.WriteErrors; if part of the line reached the
// file, that part is cut off again with ftruncate (or, if that fails too,
// ended with a '\n' before the next line), so the next line still starts
// clean. After EIO a line reported as dropped may be in the file all the
// same. What to do about a failing disk (suspend, rotate, halt: auditd's
// disk_full_action and disk_error_action) is the caller's decision; the
// Writer tries each line it is given.
func (w *Writer) WriteLine(line []byte) error {
	if i := badByte(line); i >= 0 {
		return w.drop(&w.st.badLine, fmt.Errorf("%w (byte %d of %d)", ErrBadLine, i, len(line)))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return w.drop(&w.st.closed, ErrClosed)
	case w.suspended:
		return w.drop(&w.st.suspended, ErrSuspended)
	}

	var rotErr error
	if w.stale {
		rotErr = w.reopenStale()
	}
	n := int64(len(line)) + 1
	if used := w.size + int64(len(w.buf)); w.cfg.MaxBytes > 0 && used > 0 && used+n > w.cfg.MaxBytes && !w.stale {
		switch w.cfg.MaxAction {
		case Rotate, KeepLogs:
			rotErr = w.rotate()
		case Suspend:
			w.suspend()
			return w.drop(&w.st.suspended, ErrSuspended)
		case Ignore:
			if !w.warned {
				w.warned = true
				w.log.Warn("audit log larger than its maximum size; writing on (max size action ignore)", "max_bytes", w.cfg.MaxBytes)
			}
		}
	}
	if w.f == nil {
		// Not reached: a failed rotation or reopen keeps the old file.
		return errors.Join(rotErr, w.drop(&w.st.writeFailed, fmt.Errorf("auditlog: write %s: no open file", w.cfg.Path)))
	}
	if w.queued > 0 {
		// The disk was full: what waits goes first, or this line waits
		// behind it.
		if err := w.drainQueue(); err != nil || w.queued > 0 {
			return errors.Join(rotErr, w.enqueue(append(line[:len(line):len(line)], '\n'), 1, err, false))
		}
	}

	var err error
	if w.cfg.Flush == FlushNone {
		err = w.bufferLine(line)
	} else {
		err = w.writeLine(line)
	}
	return errors.Join(rotErr, err, w.takeAsyncErr())
}

// drop counts a dropped line and marks its error.
func (w *Writer) drop(c *atomic.Uint64, err error) error {
	c.Add(1)
	return dropped(err)
}

// badByte returns the index of the first '\n' or '\r' in line, or -1.
func badByte(line []byte) int {
	i := bytes.IndexByte(line, '\n')
	if j := bytes.IndexByte(line, '\r'); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	return i
}

// writeLine writes one line with one write(2), then fsyncs if the policy
// says it is time.
func (w *Writer) writeLine(line []byte) error {
	if w.needNL {
		if err := w.repairTail(); err != nil {
			return w.drop(&w.st.writeFailed, err)
		}
	}
	if cap(w.scratch) > bufferSize {
		w.scratch = nil // do not keep a huge line's scratch forever
	}
	w.scratch = append(append(w.scratch[:0], line...), '\n')
	if err := w.write(w.scratch); err != nil {
		return err
	}
	return w.lineWritten()
}

// write hands one line (data ends with its '\n') to the kernel with one
// write(2) and counts it. After a failure it cuts off a partial line and
// counts the line as dropped, unless the file shows it whole.
func (w *Writer) write(data []byte) error { return w.writeN(data, 1) }

// writeN is write for n whole lines at once. After a failure the lines
// the file does not show whole are cut off and counted as dropped.
func (w *Writer) writeN(data []byte, n int) error {
	start := w.size
	m, err := w.f.Write(data)
	if err == nil {
		w.size += int64(m)
		w.appended(start, data)
		w.st.lines.Add(uint64(n))
		w.st.bytes.Add(uint64(m))
		if w.queued == 0 {
			w.diskSpaceBack() // without a queue, the first write that works
		}
		return nil
	}
	w.st.writeErrors.Add(1)
	err = fmt.Errorf("auditlog: %w", err)
	keep := w.settle(start, data)
	w.appended(start, data[:keep])
	kept := bytes.Count(data[:keep], []byte{'\n'})
	w.st.lines.Add(uint64(kept))
	w.st.bytes.Add(uint64(keep))
	if kept < n && noSpace(err) {
		return w.enqueue(data[keep:], n-kept, err, false)
	}
	if kept < n {
		w.st.writeFailed.Add(uint64(n - kept))
		return dropped(err)
	}
	return err
}

// noSpace says whether err means the disk (or the quota) is full: the
// one write failure that goes away by itself, so lines are kept for it.
// Other errors (EIO) are not retried: the line may be in the file all the
// same, and a retry would write it twice.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// enqueue keeps n whole lines (data, each ending in '\n') that a full
// disk refused, to be written first when space returns; lines beyond
// Config.QueueBytes are dropped and counted. cause is the failed write's
// error, if any. buffered: the lines of the FlushNone buffer, accepted
// already, which join the queue whatever its bound (64 KiB at most).
func (w *Writer) enqueue(data []byte, n int, cause error, buffered bool) error {
	if !w.st.isDiskFull.Load() {
		w.st.isDiskFull.Store(true)
		w.log.Error("audit log: disk full; keeping lines in memory until space returns", "queue_bytes", max(w.cfg.QueueBytes, 0), "err", cause)
	}
	var lost int
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n') + 1
		if !buffered && (w.cfg.QueueBytes < 0 || int64(len(w.queue)+i) > w.cfg.QueueBytes) {
			lost = n
			break
		}
		w.queue = append(w.queue, data[:i]...)
		w.queued++
		w.st.queued.Add(1)
		data, n = data[i:], n-1
	}
	if lost == 0 {
		if cause == nil {
			return ErrQueued
		}
		return fmt.Errorf("%w: %w", ErrQueued, cause)
	}
	if w.fullLost == 0 {
		w.log.Error("audit log: disk full and its queue too; dropping lines until space returns (counted)", "queued", w.queued)
	}
	w.fullLost += uint64(lost)
	w.st.diskFull.Add(uint64(lost))
	if cause == nil {
		return dropped(ErrDiskFull)
	}
	return dropped(fmt.Errorf("%w: %w", ErrDiskFull, cause))
}

// drainQueue writes the lines a full disk refused, with one write(2).
// Whole lines that reach the file leave the queue; a partial one is cut
// off again (settle). Once the queue is empty, the disk is no longer
// taken to be full.
func (w *Writer) drainQueue() error {
	if w.queued == 0 || w.f == nil {
		return nil
	}
	if w.needNL {
		if err := w.repairTail(); err != nil {
			return err
		}
	}
	keep, lines, err := w.writeWhole(w.queue)
	if err != nil {
		err = fmt.Errorf("auditlog: %w", err)
	}
	w.st.queued.Add(-int64(lines))
	w.queued -= lines
	w.queue = w.queue[:copy(w.queue, w.queue[keep:])]
	if lines > 0 {
		err = errors.Join(err, w.linesWritten(lines))
	}
	if w.queued == 0 {
		w.diskSpaceBack()
	}
	return err
}

// writeWhole writes buf with one write(2) and accounts for what reached
// the file: the bytes kept, which are whole lines (a partial line is cut
// off again, see settle), and how many lines they are.
func (w *Writer) writeWhole(buf []byte) (kept, lines int, err error) {
	start := w.size
	n, err := w.f.Write(buf)
	kept = n
	if err != nil {
		w.st.writeErrors.Add(1)
		kept = w.settle(start, buf)
	} else {
		w.size += int64(n)
	}
	w.appended(start, buf[:kept])
	lines = bytes.Count(buf[:kept], []byte{'\n'})
	w.st.lines.Add(uint64(lines))
	w.st.bytes.Add(uint64(kept))
	return kept, lines, err
}

// diskSpaceBack notes that a write succeeded after the disk was full.
func (w *Writer) diskSpaceBack() {
	if !w.st.isDiskFull.Load() {
		return
	}
	w.st.isDiskFull.Store(false)
	w.log.Warn("audit log: disk space back; queued lines written", "dropped_while_full", w.fullLost)
	w.fullLost = 0
	if cap(w.queue) > bufferSize {
		w.queue = nil // give back what a long episode took
	}
}

// WriteLines writes a block of whole lines, each ending in '\n' — an
// event's records, or a batch of events — with the guarantees of WriteLine
// for each line, but handed to the kernel with one write(2) where the flush
// policy allows: under the incremental policies, when the block does not
// reach the size limit. Otherwise the lines go one by one through
// WriteLine. A block that is empty, does not end in '\n' or holds a '\r'
// or an empty line is refused whole (ErrBadLine) and nothing is written.
func (w *Writer) WriteLines(block []byte) error {
	n := bytes.Count(block, []byte{'\n'})
	if len(block) == 0 || block[len(block)-1] != '\n' || bytes.IndexByte(block, '\r') >= 0 ||
		block[0] == '\n' || bytes.Contains(block, []byte("\n\n")) {
		w.st.badLine.Add(uint64(max(n, 1)))
		return dropped(fmt.Errorf("%w (a block of %d bytes)", ErrBadLine, len(block)))
	}
	w.mu.Lock()
	if w.queued > 0 && !w.closed && !w.suspended && w.f != nil {
		if err := w.drainQueue(); err != nil || w.queued > 0 {
			defer w.mu.Unlock()
			return w.enqueue(block, n, err, false)
		}
	}
	within := w.cfg.MaxBytes == 0 || w.size+int64(len(block)) <= w.cfg.MaxBytes || w.cfg.MaxAction == Ignore
	fast := !w.closed && !w.suspended && !w.stale && w.f != nil &&
		(w.cfg.Flush == FlushIncremental || w.cfg.Flush == FlushIncrementalAsync) && within
	if fast {
		defer w.mu.Unlock()
		if w.cfg.MaxBytes > 0 && w.size+int64(len(block)) > w.cfg.MaxBytes && !w.warned {
			w.warned = true
			w.log.Warn("audit log larger than its maximum size; writing on (max size action ignore)", "max_bytes", w.cfg.MaxBytes)
		}
		if w.needNL {
			if err := w.repairTail(); err != nil {
				w.st.writeFailed.Add(uint64(n))
				return dropped(err)
			}
		}
		if err := w.writeN(block, n); err != nil {
			return err
		}
		return errors.Join(w.linesWritten(n), w.takeAsyncErr())
	}
	w.mu.Unlock()
	var errs []error
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		errs = append(errs, w.WriteLine(block[:i]))
		block = block[i+1:]
	}
	return errors.Join(errs...)
}

// settle finds out, after a write of data at offset start failed, how
// much of data is in the file, removes a trailing partial line, and
// returns the length of the whole lines of data that remain. The file is
// the size of what we wrote: one Writer per file.
func (w *Writer) settle(start int64, data []byte) int {
	fi, err := w.f.Stat()
	if err != nil {
		// Unknown state: make sure whatever is there ends before the
		// next line.
		w.needNL = true
		w.log.Error("audit log: cannot stat after a failed write", "err", err)
		return 0
	}
	end := fi.Size()
	landed := end - start
	if landed == 0 {
		return 0
	}
	if landed < 0 || landed > int64(len(data)) {
		// Someone else changed the file. Take it as it is.
		w.size = end
		if err := w.checkTail(); err != nil {
			w.needNL = true
		}
		w.log.Warn("audit log changed by another writer", "expected_size", start, "size", end)
		return 0
	}
	keep := bytes.LastIndexByte(data[:landed], '\n') + 1
	if int64(keep) == landed {
		w.size = end
		return keep
	}
	if err := w.f.Truncate(start + int64(keep)); err != nil {
		w.size = end
		w.needNL = true
		w.log.Error("audit log: cannot cut off a partial line; it will be ended with a newline", "offset", start+int64(keep), "err", err)
		return keep
	}
	w.size = start + int64(keep)
	w.log.Warn("audit log: cut off the partial line of a failed write", "offset", w.size, "bytes", landed-int64(keep))
	return keep
}

// lineWritten counts a line for the incremental policies and fsyncs, or
// asks for an fsync, every Freq lines.
func (w *Writer) lineWritten() error { return w.linesWritten(1) }

// linesWritten counts n lines written at once: one fsync covers them all.
func (w *Writer) linesWritten(n int) error {
	if w.cfg.Flush != FlushIncremental && w.cfg.Flush != FlushIncrementalAsync {
		return nil
	}
	w.unsynced += n
	if w.unsynced < w.cfg.Freq {
		return nil
	}
	w.unsynced = 0
	if w.cfg.Flush == FlushIncrementalAsync {
		if w.closed {
			return nil // Close stopped the goroutine; retire fsyncs
		}
		select {
		case w.syncReq <- w.f:
		default: // an fsync is already asked for; it will cover this line
		}
		return nil
	}
	return w.fsync()
}

// bufferLine adds a line to the FlushNone buffer, writing the buffer first
// if the line does not fit.
func (w *Writer) bufferLine(line []byte) error {
	need := len(line) + 1
	if len(w.buf)+need > cap(w.buf) {
		if err := w.flushBuf(); err != nil {
			if w.queued > 0 || noSpace(err) {
				return w.enqueue(append(line[:len(line):len(line)], '\n'), 1, err, false)
			}
			return w.drop(&w.st.writeFailed, err)
		}
	}
	if need > cap(w.buf) {
		// Longer than the buffer (now empty): write it alone.
		if w.needNL {
			if err := w.repairTail(); err != nil {
				return w.drop(&w.st.writeFailed, err)
			}
		}
		return w.write(append(line[:len(line):len(line)], '\n'))
	}
	w.buf = append(append(w.buf, line...), '\n')
	w.pending++
	w.st.buffered.Add(1)
	return nil
}

// flushBuf writes the FlushNone buffer. On failure the lines that did not
// reach the file stay in the buffer for the next try.
func (w *Writer) flushBuf() error {
	if len(w.buf) == 0 || w.f == nil {
		return nil
	}
	if w.needNL {
		if err := w.repairTail(); err != nil {
			return err
		}
	}
	kept, lines, err := w.writeWhole(w.buf)
	w.st.buffered.Add(-int64(lines))
	w.pending -= lines
	w.buf = w.buf[:copy(w.buf, w.buf[kept:])]
	if err != nil {
		err = fmt.Errorf("auditlog: %w", err)
		if noSpace(err) && w.cfg.QueueBytes >= 0 {
			// The buffer's lines join the queue, which the next lines
			// wait behind, so the buffer is free again. (Without a
			// queue they stay buffered for the next try.)
			w.st.buffered.Add(-int64(w.pending))
			qerr := w.enqueue(w.buf, w.pending, err, true)
			w.pending, w.buf = 0, w.buf[:0]
			if errors.Is(qerr, ErrDropped) {
				return qerr
			}
		}
		return err
	}
	if w.queued == 0 {
		w.diskSpaceBack()
	}
	return nil
}

// dropBuf gives up the lines still buffered, counting them as dropped.
func (w *Writer) dropBuf() {
	if w.pending > 0 {
		w.log.Error("audit log: dropping buffered lines that could not be written", "lines", w.pending)
	}
	w.st.writeFailed.Add(uint64(w.pending))
	w.st.buffered.Add(-int64(w.pending))
	w.pending = 0
	w.buf = w.buf[:0]
}

// Flush makes the lines accepted so far as safe as the policy can: it
// writes the lines a full disk queued, if it can; under FlushNone it
// hands the buffer to the kernel (they then survive a process crash);
// under FlushIncremental and FlushIncrementalAsync it fsyncs the file and
// waits for it; under FlushData and FlushSync there is nothing left to do.
// A daemon using FlushNone should call it on a timer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.f == nil {
		return nil
	}
	if err := w.drainQueue(); err != nil {
		return err
	}
	switch w.cfg.Flush {
	case FlushNone:
		return w.flushBuf()
	case FlushIncremental, FlushIncrementalAsync:
		w.unsynced = 0
		return errors.Join(w.fsync(), w.takeAsyncErr())
	}
	return nil
}

// Retry writes the lines a full disk queued, if space has come back; it
// does nothing when none wait. A daemon calls it on a timer, so that a
// queue is written when space returns even if no new line comes.
func (w *Writer) Retry() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.drainQueue()
}

// Reconfigure applies cfg — limits, flush policy, mode, queue bound, even
// a new Path — and reopens cfg.Path, creating it if it is gone: what a
// daemon does on SIGHUP, both to apply a changed configuration and after
// logrotate renamed the log. The Writer stays the same, so whoever holds
// it never writes to a stale file. No line is lost: lines written before
// are in the old file (fsynced unless FlushNone), and lines buffered or
// queued go to the new file before any later line. An invalid cfg is
// refused and changes nothing. If the open fails (ErrRotate), the new
// settings apply to the old file, which keeps every line, and the open is
// tried again before each line.
func (w *Writer) Reconfigure(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	old := w.cfg
	w.cfg, w.log = cfg, w.base.With("log", cfg.Path)
	if old.Flush == FlushIncrementalAsync && cfg.Flush != FlushIncrementalAsync {
		w.stopSyncLoop()
	}
	w.startSyncLoop()
	if cfg.Flush == FlushNone && w.buf == nil {
		w.buf = make([]byte, 0, bufferSize)
	}
	var errs []error
	if f, size, err := w.openFile(); err != nil {
		w.st.rotateErrors.Add(1)
		w.stale = w.f != nil
		errs = append(errs, fmt.Errorf("%w: %w", ErrRotate, err))
	} else {
		errs = append(errs, w.switchTo(f, size))
	}
	errs = append(errs, w.drainQueue())
	if cfg.Flush != FlushNone && len(w.buf) > 0 {
		// Lines buffered under FlushNone: write them now.
		if err := w.flushBuf(); err != nil {
			errs = append(errs, err)
		}
		if len(w.buf) > 0 {
			// Not written and not queued (not a full disk): keep them
			// buffered under the old rule until the next Flush.
			w.cfg.Flush = FlushNone
			w.log.Error("audit log: buffered lines could not be written; keeping flush=none until they are", "lines", w.pending)
		}
	}
	if cfg.Flush != FlushNone && len(w.buf) == 0 {
		w.buf = nil
	}
	return errors.Join(errs...)
}

// Reopen closes the log and opens cfg.Path again, creating it if it is
// gone: for when something else has moved or removed the file, and to
// resume after MaxAction Suspend. Lines still buffered go to the new file.
// If the open fails, the Writer keeps its old file, writes to it, and
// tries again at each line.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	f, size, err := w.openFile()
	if err != nil {
		w.st.rotateErrors.Add(1)
		w.stale = w.f != nil
		return fmt.Errorf("%w: %w", ErrRotate, err)
	}
	return w.switchTo(f, size)
}

// Close writes what is buffered, fsyncs unless the policy is FlushNone,
// and closes the file. Buffered lines that cannot be written are counted
// in Stats.Dropped.WriteFailed and the error says so.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.syncReq != nil {
		close(w.syncReq)
		<-w.syncDone
	}
	var err error
	if w.f != nil {
		err = w.closeFile()
	}
	if w.queued > 0 {
		// No space came back: the queue has nowhere to go.
		w.log.Error("audit log: closing with lines a full disk refused; dropping them", "lines", w.queued)
		w.st.diskFull.Add(uint64(w.queued))
		w.st.queued.Add(-int64(w.queued))
		w.queued, w.queue = 0, nil
		err = errors.Join(err, dropped(ErrDiskFull))
	}
	return errors.Join(err, w.takeAsyncErr())
}

// Stats returns the Writer's counters. Unlike the other methods it does
// not wait for a write in progress.
func (w *Writer) Stats() Stats { return w.st.snapshot() }

// openFile opens cfg.Path for appending, creating it with cfg.Mode.
// O_NOFOLLOW, O_NOCTTY and the regular-file check keep it from writing
// through a symlink or into a device or FIFO planted at the path. (O_RDWR
// so that checkTail can read the last byte through the same descriptor.)
func (w *Writer) openFile() (*os.File, int64, error) {
	flags := os.O_RDWR | os.O_APPEND | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_NOCTTY
	switch w.cfg.Flush {
	case FlushData:
		flags |= syscall.O_DSYNC
	case FlushSync:
		flags |= os.O_SYNC
	}
	f, err := os.OpenFile(w.cfg.Path, flags, w.cfg.Mode)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, &fs.PathError{Op: "open", Path: w.cfg.Path, Err: fmt.Errorf("not a regular file (%v)", fi.Mode().Type())}
	}
	if fi.Mode().Perm() != w.cfg.Mode {
		// Also undoes the umask on a new file and the read-only mode of
		// a rotated file moved back by hand.
		if err := f.Chmod(w.cfg.Mode); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	if fi.Size() == 0 && w.cfg.Flush != FlushNone {
		// Likely just created: make its name durable, or a system crash
		// could lose the file with every line fsynced into it.
		if err := w.syncDir(); err != nil {
			w.log.Warn("audit log: cannot fsync the directory", "err", err)
		}
	}
	return f, fi.Size(), nil
}

// checkTail sets needNL if the file does not end with '\n'.
func (w *Writer) checkTail() error {
	w.needNL = false
	if w.size == 0 {
		return nil
	}
	var b [1]byte
	if _, err := w.f.ReadAt(b[:], w.size-1); err != nil {
		return fmt.Errorf("auditlog: check last byte: %w", err)
	}
	w.needNL = b[0] != '\n'
	return nil
}

// repairTail ends a partial last line with a '\n'.
func (w *Writer) repairTail() error {
	if _, err := w.f.Write([]byte{'\n'}); err != nil {
		w.st.writeErrors.Add(1)
		// Part of a one-byte write cannot land; the file is unchanged.
		return fmt.Errorf("auditlog: end partial last line: %w", err)
	}
	w.size++
	w.needNL = false
	w.st.tailRepairs.Add(1)
	w.st.bytes.Add(1)
	w.log.Warn("audit log did not end with a newline (crash in mid-write, or another writer); ended the partial line", "offset", w.size-1)
	return nil
}

// fsync syncs the current file.
func (w *Writer) fsync() error {
	if err := w.f.Sync(); err != nil {
		w.st.syncErrors.Add(1)
		return fmt.Errorf("%w: %w", ErrSync, err)
	}
	return nil
}

func (w *Writer) syncDir() error {
	d, err := os.Open(filepath.Dir(w.cfg.Path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// startSyncLoop starts FlushIncrementalAsync's background goroutine if
// that is the policy and it does not run.
func (w *Writer) startSyncLoop() {
	if w.cfg.Flush != FlushIncrementalAsync || w.syncReq != nil {
		return
	}
	w.syncReq = make(chan *os.File, 1)
	w.syncDone = make(chan struct{})
	go w.syncLoop(w.syncReq, w.syncDone)
}

// stopSyncLoop stops the background goroutine and waits for it; its last
// error is kept for the next call to report.
func (w *Writer) stopSyncLoop() {
	if w.syncReq == nil {
		return
	}
	close(w.syncReq)
	<-w.syncDone
	if p := w.asyncErr.Swap(nil); p != nil {
		w.log.Error("audit log: background fsync failed before the flush policy changed", "err", *p)
	}
	w.syncReq, w.syncDone = nil, nil
}

// syncLoop is FlushIncrementalAsync's background goroutine, like auditd's
// flush thread. It only touches the files it is sent and atomics.
func (w *Writer) syncLoop(req <-chan *os.File, done chan<- struct{}) {
	defer close(done)
	for f := range req {
		// os.File counts its users, so a Close during Sync waits for it
		// to finish; a file already closed (rotated) was synced then.
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			w.st.syncErrors.Add(1)
			err = fmt.Errorf("%w (in the background): %w", ErrSync, err)
			w.asyncErr.Store(&err)
			w.log.Error("audit log: background fsync failed", "err", err)
		}
	}
}

// takeAsyncErr returns, once, the last background fsync error.
func (w *Writer) takeAsyncErr() error {
	if w.syncReq == nil || w.asyncErr.Load() == nil {
		return nil
	}
	if p := w.asyncErr.Swap(nil); p != nil {
		return *p
	}
	return nil
}

// switchTo makes f, just opened at cfg.Path, the current file. The old one
// is synced and closed; lines still buffered go to f.
func (w *Writer) switchTo(f *os.File, size int64) error {
	var errs []error
	if w.f != nil {
		errs = append(errs, w.retire())
	}
	w.f, w.size = f, size
	w.unsynced, w.warned, w.stale = 0, false, false
	if w.suspended {
		w.suspended = false
		w.st.isSuspended.Store(false)
		w.log.Info("audit log: logging resumed")
	}
	if err := w.checkTail(); err != nil {
		errs = append(errs, err)
	} else if w.needNL {
		errs = append(errs, w.repairTail())
	}
	return errors.Join(errs...)
}

// closeFile writes the buffer to the current file, dropping the lines
// that cannot be written (there is no next file for them), and retires
// the file.
func (w *Writer) closeFile() error {
	var errs []error
	if err := w.flushBuf(); err != nil {
		errs = append(errs, err)
		w.dropBuf()
	}
	if err := w.drainQueue(); err != nil {
		errs = append(errs, err) // the queue stays for the next file, or Close drops it
	}
	errs = append(errs, w.retire())
	return errors.Join(errs...)
}

// retire syncs the current file unless the policy is FlushNone, and
// closes it.
func (w *Writer) retire() error {
	var errs []error
	if w.obs != nil {
		w.obs.Retiring(w.f)
	}
	w.drainSyncReq()
	if w.cfg.Flush != FlushNone {
		if err := w.fsync(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("auditlog: %w", err))
	}
	w.f = nil
	return errors.Join(errs...)
}

// drainSyncReq forgets a pending background fsync of the file about to be
// closed (retire syncs it itself), so the request slot is free for the
// next file.
func (w *Writer) drainSyncReq() {
	if w.syncReq == nil || w.closed {
		return
	}
	select {
	case <-w.syncReq:
	default:
	}
}

// suspend stops logging at the maximum size. The file is closed so that
// an operator can move it away, as auditd does.
func (w *Writer) suspend() {
	err := w.closeFile()
	w.suspended = true
	w.st.isSuspended.Store(true)
	w.log.Error("audit log reached its maximum size; logging suspended until rotate or reopen (max size action suspend)", "max_bytes", w.cfg.MaxBytes, "close_err", err)
}
