package sink

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

// A file sink on a file system that fills up, then gets room again: the
// sink says it is failing meanwhile, and the file holds whole lines only,
// each event once: a write cut short by ENOSPC is taken back, not glued to
// the event's next try.
func TestFileSinkOnAFullDiskKeepsWholeLines(t *testing.T) {
	dir := testkit.Tmpfs(t, "32k")
	// Most of the room goes to a file freed later.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "events.json")
	s := mustOpen(t, "file:"+path, Options{QueueLen: 1024, MaxBackoff: 20 * time.Millisecond})

	// ~22 KiB: more than the room left, less than the room once the
	// filler goes.
	const total = 70
	for i := 0; i < total; i++ {
		s.Write(testEvent(i))
	}
	waitFor(t, 10*time.Second, "the sink to fail on the full disk", func() bool { return s.Stats().Failing })
	if st := s.Stats(); !strings.Contains(st.LastError, "no space left") {
		t.Fatalf("stats on a full disk: %+v", st)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the sink to deliver everything", func() bool {
		st := s.Stats()
		return !st.Failing && st.Written == total
	})

	// Every event once, whole, in order.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	last, lines := -1, 0
	for sc.Scan() {
		var ev struct{ ID int }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", lines+1, err, sc.Text())
		}
		if ev.ID <= last {
			t.Fatalf("line %d: event %d after %d", lines+1, ev.ID, last)
		}
		last = ev.ID
		lines++
	}
	if lines != total {
		t.Fatalf("%d whole lines in the file, want %d: %+v", lines, total, s.Stats())
	}
}

// Taking bytes back from a descriptor opened without O_APPEND (a shell's
// > redirect of stdout) moves its offset too: no hole of NULs.
func TestTakeBackWithoutAppend(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("{\"id\":1}\n{\"id\"")
	if err := truncateTail(f, len(`{"id"`)); err != nil {
		t.Fatal(err)
	}
	f.WriteString("{\"id\":2}\n")
	b, _ := os.ReadFile(f.Name())
	if string(b) != "{\"id\":1}\n{\"id\":2}\n" {
		t.Fatalf("file %q", b)
	}
	// Bytes someone else wrote after ours are not cut.
	other, _ := os.OpenFile(f.Name(), os.O_WRONLY|os.O_APPEND, 0)
	other.WriteString("theirs\n")
	other.Close()
	if err := truncateTail(f, 3); err == nil {
		t.Fatal("cut into another writer's bytes")
	}
}
