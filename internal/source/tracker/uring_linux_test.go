package tracker

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/contid/contid/internal/testing/testwait"
)

// Just enough io_uring to make the kernel start an io-wq worker thread
// (create_io_thread, not kernel_clone): one NOP submitted with IOSQE_ASYNC.

type uringSQOff struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type uringCQOff struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  uringSQOff
	CQOff                                                                  uringCQOff
}

const (
	sysIOUringSetup   = 425
	sysIOUringEnter   = 426
	uringOffSQEs      = 0x10000000
	uringEnterGetEvts = 1
	sqeAsync          = 1 << 4
	sqeSize           = 64
)

// startIOWorker makes the calling process start an io_uring worker thread
// and returns its tid. The ring stays open (and the worker alive for its
// idle time, a few seconds) until close is called.
func startIOWorker() (tid int, close func(), err error) {
	var p uringParams
	fd, _, errno := unix.Syscall(sysIOUringSetup, 4, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return 0, nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	ringFd := int(fd)
	sqSize := int(p.SQOff.Array + p.SQEntries*4)
	sq, err := unix.Mmap(ringFd, 0, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(ringFd)
		return 0, nil, fmt.Errorf("mmap sq ring: %w", err)
	}
	sqes, err := unix.Mmap(ringFd, uringOffSQEs, int(p.SQEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(sq)
		unix.Close(ringFd)
		return 0, nil, fmt.Errorf("mmap sqes: %w", err)
	}
	close = func() {
		unix.Munmap(sqes)
		unix.Munmap(sq)
		unix.Close(ringFd)
	}
	clear(sqes[:sqeSize])
	sqes[0] = 0        // IORING_OP_NOP
	sqes[1] = sqeAsync // always go through io-wq
	sqes[32] = 1       // user_data
	tail := (*uint32)(unsafe.Pointer(&sq[p.SQOff.Tail]))
	mask := *(*uint32)(unsafe.Pointer(&sq[p.SQOff.RingMask]))
	t := atomic.LoadUint32(tail)
	*(*uint32)(unsafe.Pointer(&sq[p.SQOff.Array+4*(t&mask)])) = 0
	atomic.StoreUint32(tail, t+1)
	if _, _, errno := unix.Syscall6(sysIOUringEnter, uintptr(ringFd), 1, 1, uringEnterGetEvts, 0, 0); errno != 0 {
		close()
		return 0, nil, fmt.Errorf("io_uring_enter: %w", errno)
	}
	// In the helper process, which has no testing.T: the worker thread
	// is one step, given testwait.Idle.
	deadline := time.Now().Add(testwait.Idle())
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc/self/task")
		for _, e := range ents {
			b, _ := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
			if strings.HasPrefix(string(b), "iou-wrk") {
				var n int
				fmt.Sscan(e.Name(), &n)
				return n, close, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	close()
	return 0, nil, fmt.Errorf("no iou-wrk thread appeared")
}
