//go:build !unix

package testserver

// lockFile does not lock where flock(2) is unavailable: concurrent test
// processes may then build the helper at the same time.
func lockFile(path string) (unlock func(), err error) {
	return func() {}, nil
}
