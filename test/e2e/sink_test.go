package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

var errNotYet = errors.New("not yet")

// A file sink on a file system that fills during a run and then gets room
// again: /healthz is degraded meanwhile, naming the sink, and afterwards
// every line of the file is a whole JSON event.
func TestFileSinkOnFullDisk(t *testing.T) {
	needKernel(t)
	dir := testkit.Tmpfs(t, "64k")
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 48<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "events.json")
	d := StartDaemon(t, "--sink", "file:"+full)
	server, client := StartPeer(t), StartPeer(t)
	port := server.Port("listen tcp4 127.0.0.1:0")

	type health struct {
		Status   string
		Warnings []string
	}
	var h health
	// ~10 events of ~400 bytes a connection: the 16 KiB left fill soon.
	eventually(t, "/healthz degraded by the full disk", 20*time.Second, func() error {
		oneConnection(server, client, "tcp4", port)
		h = health{}
		d.get("/healthz", nil, &h)
		if h.Status == "degraded" && strings.Contains(strings.Join(h.Warnings, " "), "file:"+full) {
			return nil
		}
		return errNotYet
	})
	if !strings.Contains(strings.Join(h.Warnings, " "), "no space left") {
		t.Errorf("healthz warnings do not say why: %q", h.Warnings)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/healthz ok once there is room", 20*time.Second, func() error {
		h = health{}
		d.get("/healthz", nil, &h)
		if h.Status == "ok" {
			return nil
		}
		return errNotYet
	})
	d.Stop()
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d of the sink on the full disk is not JSON: %v: %q", n+1, err, sc.Text())
		}
		n++
	}
	if n == 0 || !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("%d lines, ending %q", n, b[max(0, len(b)-20):])
	}
}
