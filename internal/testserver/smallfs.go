package testserver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SmallFS mounts a tmpfs of size bytes on a fresh directory of tb's
// temporary directory and returns that directory; the test's cleanup
// unmounts it. Mounting needs root (or CAP_SYS_ADMIN): where the mount is
// refused the test is skipped with a message, or fails when CI is set.
func SmallFS(tb testing.TB, size int64) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a small tmpfs (%v: %s); run the test as root to check a full disk", err, out)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FillFS writes path until its file system is full (ENOSPC) and returns
// how many bytes it wrote; removing path gives them back.
func FillFS(tb testing.TB, path string) int64 {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			if errors.Is(err, io.ErrShortWrite) || isNoSpace(err) {
				// Fill the last bytes too, a small write at a time.
				for len(buf) > 1 {
					buf = buf[:len(buf)/2]
					for {
						w, err := f.Write(buf)
						n += int64(w)
						if err != nil {
							break
						}
					}
				}
				return n
			}
			tb.Fatalf("fill %s: %v", path, err)
		}
	}
}
