package netns

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// Do runs fn in the other namespace and leaves every thread the runtime
// keeps, the main one above all, in the daemon's own: /proc/self/ns/net is
// the main thread's, and a Self that followed it elsewhere made the daemon
// take a test-made namespace for its own.
func TestDoLeavesTheDaemonsThreadsHome(t *testing.T) {
	testkit.NeedRoot(t)
	holder := exec.Command("sleep", "60")
	// No Pdeathsig: it fires when the thread that started the holder
	// ends, and every Do below ends a thread of this process (CI saw the
	// namespace gone at round 2). Cleanup kills it; sleep ends anyway.
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		t.Fatalf("making a network namespace: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	path := "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net"
	ino, err := linkInode(path)
	if err != nil {
		t.Fatal(err)
	}
	home, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if ino == home.Inode {
		t.Fatal("the holder is in the test's own namespace")
	}
	mainThread := "/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/ns/net"
	// Enough rounds that the scheduler hands out the main thread: before
	// the fix the first round already did, most of the time.
	for i := 0; i < 200; i++ {
		var inside uint64
		err := Do(NS{Inode: ino, Path: path}, func() error {
			var err error
			inside, err = linkInode("/proc/thread-self/ns/net")
			return err
		})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if inside != ino {
			t.Fatalf("round %d: fn ran in namespace %d, want %d", i, inside, ino)
		}
		if self, _ := Self(); self.Inode != home.Inode {
			t.Fatalf("round %d: Self is now %d, was %d", i, self.Inode, home.Inode)
		}
		if m, _ := linkInode(mainThread); m != home.Inode {
			t.Fatalf("round %d: the main thread is in namespace %d, was %d", i, m, home.Inode)
		}
	}
}
