package sink

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// fileDest appends to a file by path. Reopen closes it and opens the path
// again, so after logrotate renames the file the next event starts a new one.
type fileDest struct {
	path  string
	mode  os.FileMode
	f     *os.File
	cache pageCacheWindow
}

func (d *fileDest) open(time.Time) error {
	f, err := openAppend(d.path, d.mode)
	if err != nil {
		return err
	}
	d.f = f
	d.cache.reset()
	return nil
}

// openAppend opens path for appending. A file it creates gets exactly mode,
// whatever the umask; an existing file keeps the mode it has (logrotate's
// "create" may have chosen one).
func openAppend(path string, mode os.FileMode) (*os.File, error) {
	// Refuse FIFOs before opening: opening one for writing blocks until a
	// reader appears. Character devices such as /dev/null are fine.
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() && st.Mode()&fs.ModeCharDevice == 0 {
		return nil, fmt.Errorf("open %s: not a regular file or character device", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, mode)
	if err == nil {
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}

func (d *fileDest) write(p []byte, _ time.Time) (int, error) {
	if d.f == nil {
		return 0, os.ErrClosed
	}
	n, err := d.f.Write(p)
	d.cache.wrote(d.f, n)
	return n, err
}

func (d *fileDest) close() {
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
}

func (d *fileDest) takeBack(n int) error { return truncateTail(d.f, n) }

// truncateTail takes back the last n bytes this descriptor wrote to a
// regular file: it truncates and moves the offset back, so that a
// descriptor opened without O_APPEND (a shell's > redirect of stdout) does
// not leave a hole. Only when the file ends where this write did: bytes
// someone else wrote since are not ours to cut. Other kinds of file (a
// character device, a pipe) cannot take bytes back.
func truncateTail(f *os.File, n int) error {
	if f == nil {
		return os.ErrClosed
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if pos != st.Size() || int64(n) > pos {
		return fmt.Errorf("the file changed under the sink (offset %d, size %d): not cutting %d bytes", pos, st.Size(), n)
	}
	if err := f.Truncate(pos - int64(n)); err != nil {
		return err
	}
	_, err = f.Seek(pos-int64(n), io.SeekStart)
	return err
}

func (d *fileDest) healthy() bool  { return d.f != nil }
func (d *fileDest) datagram() bool { return false }
func (d *fileDest) reopens() bool  { return true }

// stdioDest writes to the process's stdout or stderr, which it never closes.
type stdioDest struct{ f *os.File }

func (d *stdioDest) open(time.Time) error { return nil }
func (d *stdioDest) write(p []byte, _ time.Time) (int, error) {
	return d.f.Write(p)
}
func (d *stdioDest) close()               {}
func (d *stdioDest) takeBack(n int) error { return truncateTail(d.f, n) }
func (d *stdioDest) healthy() bool        { return true }
func (d *stdioDest) datagram() bool       { return false }
func (d *stdioDest) reopens() bool        { return false }
