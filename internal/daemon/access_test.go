package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tcpstated/tcpstated/internal/testkit"
)

func TestOwnedBy(t *testing.T) {
	self := uint32(os.Getpid())
	o := newOwnedBy(uint32(os.Geteuid()))
	if !o.owns(self, 0) {
		t.Errorf("this process is not its own user's")
	}
	// A row older than the process is another process's that had the pid.
	if o.owns(self, 1e7) {
		t.Errorf("a row 1e7 s old belongs to a process started just now")
	}
	if o.owns(0, 0) {
		t.Errorf("pid 0 (no owner) is somebody's")
	}
	if newOwnedBy(uint32(os.Geteuid())+1).owns(self, 0) {
		t.Errorf("another uid owns this process")
	}
}

func TestStartTicks(t *testing.T) {
	dir := t.TempDir()
	// A comm may hold spaces and parentheses: the fields follow the last ')'.
	stat := "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	p := filepath.Join(dir, "stat")
	os.WriteFile(p, []byte(stat+"\n"), 0o644)
	if n, err := startTicks(p); err != nil || n != 987654 {
		t.Errorf("startTicks = %d, %v; want 987654", n, err)
	}
	os.WriteFile(p, []byte("4242 (x) S 1"), 0o644)
	if _, err := startTicks(p); err == nil {
		t.Errorf("a short stat line is accepted")
	}
}

func TestSafeSocketDir(t *testing.T) {
	testkit.NeedRoot(t) // chown
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o755, 0)
	sticky := mk("sticky", 0o777|os.ModeSticky, 0)
	under := filepath.Join(sticky, "run")
	os.Mkdir(under, 0o755)
	for dir, want := range map[string]string{
		good:                           "",
		under:                          "", // /tmp-like above, root's own below
		sticky:                         "writable by other users",
		mk("open", 0o777, 0):           "writable by other users",
		mk("theirs", 0o755, 65534):     "belongs to uid 65534",
		filepath.Join(base, "missing"): "no such file",
	} {
		err := safeSocketDir(dir)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", dir, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error saying %q", dir, err, want)
		}
	}
	// A symlink to a good directory is judged by where it leads.
	link := filepath.Join(base, "link")
	os.Symlink(good, link)
	if err := safeSocketDir(link); err != nil {
		t.Errorf("symlink to a good directory: %v", err)
	}
}

// An edit that takes the users out of the web config closes the
// listener (503) until they are back; the toolkit alone would serve
// everyone.
func TestWebConfigStaysSecure(t *testing.T) {
	dir := t.TempDir()
	testkit.NewPKI(t, dir)
	path := filepath.Join(dir, "web.yml")
	secure := "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  ops: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n"
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		// The check notices a change by mtime, size and inode.
		now := time.Now().Add(time.Duration(len(s)) * time.Second)
		os.Chtimes(path, now, now)
	}
	write(secure)
	opt := Options{Listen: "0.0.0.0:9932", WebConfigFile: path}
	sec, err := listenPolicy(opt)
	if err != nil || !sec.TLS || !sec.Auth {
		t.Fatalf("policy: %+v, %v", sec, err)
	}
	d := &Daemon{opt: opt, web: sec, log: zerolog.Nop()}
	h := d.stillSecure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "served") }))
	get := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Code
	}
	if c := get(); c != http.StatusOK {
		t.Fatalf("secure config: %d", c)
	}
	write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("users removed: %d, want 503", c)
	}
	write(secure + "\n")
	if c := get(); c != http.StatusOK {
		t.Errorf("users back: %d, want 200", c)
	}
	os.Remove(path)
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("config gone: %d, want 503", c)
	}
}

// The ready file replaces what is at its path; it never writes through a
// symlink planted there.
func TestReadyFileReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	ready := filepath.Join(dir, "ready")
	os.Symlink(victim, ready)
	if err := writeReplacing(ready, []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if fi, err := os.Lstat(ready); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("ready is not a regular file: %v %v", fi, err)
	}
}
