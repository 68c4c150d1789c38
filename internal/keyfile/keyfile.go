// Package keyfile writes a secret key file once: the signing key and the
// VAPID key are created on a node's first start, and several processes
// may start at once on one data directory.
package keyfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Create writes data to path with mode 0600, creating its directory with
// mode 0700. A temporary file is written, synced and linked into place, so
// the key file never exists half-written and an existing one is never
// replaced: when path already exists (another process created it first)
// the error wraps fs.ErrExist, and the caller reads that file instead.
func Create(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".key-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(f.Name(), path)
}
