package sink

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestFileRotationMidStreamKeepsEveryEventExactlyOnce(t *testing.T) {
	// Chmod after create must give 0640 whatever the umask.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	const total = 20000
	s := mustOpen(t, "file:"+path, Options{QueueLen: total})

	var sent atomic.Int64
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; i < total; i++ {
			s.Write(testEvent(i))
			sent.Add(1)
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // keep the stream going while we rotate
			}
		}
	}()

	// logrotate: move the file away, then SIGHUP, while events keep coming.
	waitFor(t, 10*time.Second, "a third of the events", func() bool { return sent.Load() >= total/3 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	select {
	case <-writerDone:
	case <-time.After(30 * time.Second):
		t.Fatal("writer did not finish")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	st := s.Stats()
	if st.Dropped != 0 || st.Written != total || st.Errors != 0 {
		t.Fatalf("stats = %+v, want %d written, 0 dropped, 0 errors", st, total)
	}
	rotated, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	current, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, after := eventIDs(t, rotated, false), eventIDs(t, current, false)
	if len(before) == 0 || len(after) == 0 {
		t.Fatalf("rotation was not mid-stream: %d events before, %d after", len(before), len(after))
	}
	seen := make([]int, total)
	for _, id := range append(before, after...) {
		seen[id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("event %d appears %d times across the rotation", id, n)
		}
	}
	// Order holds too: the old file ends where the new one starts.
	if before[len(before)-1]+1 != after[0] {
		t.Fatalf("old file ends at %d, new file starts at %d", before[len(before)-1], after[0])
	}
	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s has mode %v, want 0640", p, fi.Mode().Perm())
		}
	}
}

func TestFileAppendsToExistingFileAndKeepsItsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(path, []byte("{\"id\":-1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, "file://"+path, Options{})
	s.Write(testEvent(1))
	s.Write([]byte(`{"id":2}`)) // no newline: the sink adds one
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	ids := eventIDs(t, data, false)
	if len(ids) != 3 || ids[0] != -1 || ids[1] != 1 || ids[2] != 2 {
		t.Fatalf("file holds ids %v, want [-1 1 2]", ids)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("existing file's mode changed to %v", fi.Mode().Perm())
	}
}

func TestFileReopenRecreatesDeletedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s := mustOpen(t, "file:"+path, Options{})
	s.Write(testEvent(1))
	waitFor(t, 5*time.Second, "first event written", func() bool { return s.Stats().Written == 1 })
	os.Remove(path)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.Write(testEvent(2))
	s.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids := eventIDs(t, data, false); len(ids) != 1 || ids[0] != 2 {
		t.Fatalf("new file holds %v, want [2]", ids)
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open("file:"+filepath.Join(dir, "missing-dir", "x.json"), Options{}); err == nil {
		t.Error("Open succeeded in a directory that does not exist")
	}
	if _, err := Open("file:"+dir, Options{}); err == nil {
		t.Error("Open succeeded on a directory")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open("file:"+fifo, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open on a FIFO = %v, want a refusal", err)
	}
}

func TestFileReopenFailureIsReportedAndRetried(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	os.Mkdir(sub, 0o755)
	path := filepath.Join(sub, "events.json")
	s := mustOpen(t, "file:"+path, Options{MaxBackoff: 20 * time.Millisecond})
	os.Rename(sub, sub+".old") // the directory is gone: reopen must fail
	if err := s.Reopen(); err == nil {
		t.Fatal("Reopen succeeded with the directory gone")
	}
	if st := s.Stats(); st.Connected || st.Errors == 0 {
		t.Fatalf("stats after failed reopen = %+v", st)
	}
	s.Write(testEvent(7)) // stays queued until the path works again
	os.Mkdir(sub, 0o755)
	waitFor(t, 5*time.Second, "retry to open the file", func() bool { return s.Stats().Written == 1 })
	data, _ := os.ReadFile(path)
	if ids := eventIDs(t, data, false); len(ids) != 1 || ids[0] != 7 {
		t.Fatalf("file holds %v, want [7]", ids)
	}
}

func TestCloseFlushesQueuedEventsAndRefusesLaterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s := mustOpen(t, "file:"+path, Options{})
	for i := 0; i < 3000; i++ {
		s.Write(testEvent(i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if n := len(eventIDs(t, data, false)); n != 3000 {
		t.Fatalf("file holds %d events after Close, want 3000", n)
	}
	if _, err := s.Write(testEvent(1)); err != ErrClosed {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := s.Reopen(); err != ErrClosed {
		t.Fatalf("Reopen after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestStdoutSink(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	s, err := Open("stdout", Options{})
	os.Stdout = saved
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(r)
	s.Write(testEvent(5))
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen on stdout = %v, want no-op", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	<-got.done
	if ids := eventIDs(t, got.Bytes(), false); len(ids) != 1 || ids[0] != 5 {
		t.Fatalf("stdout got %v", ids)
	}
	if s.Name() != "stdout" {
		t.Fatalf("Name = %q", s.Name())
	}
}

// DeferWake: events wait in the queue until Flush wakes the drainer, or
// until a whole batch has queued up behind it.
func TestDeferWakeWritesOnFlushOrFullBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	s := mustOpen(t, "file:"+path, Options{QueueLen: 4 * batchEvents, DeferWake: true})
	defer s.Close()
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}

	// One event and a Flush, so that the drainer has started, written it
	// and gone back to sleep on an empty queue.
	s.Write(testEvent(0))
	s.Flush()
	waitFor(t, 5*time.Second, "the first event", func() bool { return s.Stats().Written == 1 })
	time.Sleep(50 * time.Millisecond)
	before := size()
	for i := 1; i < 3; i++ {
		s.Write(testEvent(i))
	}
	time.Sleep(50 * time.Millisecond) // a woken drainer writes within ~1 ms
	if n := size(); n != before {
		t.Fatalf("%d bytes written before Flush", n-before)
	}
	s.Flush()
	waitFor(t, 5*time.Second, "3 events after Flush", func() bool { return s.Stats().Written == 3 })

	// No Flush: the batchEvents-th queued event wakes the drainer itself.
	time.Sleep(50 * time.Millisecond)
	for i := 3; i < 3+batchEvents; i++ {
		s.Write(testEvent(i))
	}
	waitFor(t, 5*time.Second, "a full batch without Flush", func() bool { return s.Stats().Written == 3+batchEvents })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ids := eventIDs(t, data, false); len(ids) != 3+batchEvents {
		t.Fatalf("%d events in the file, want %d", len(ids), 3+batchEvents)
	}
}
