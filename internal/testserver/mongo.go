package testserver

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// MongoURIEnv names the environment variable that points the tests at an
// existing MongoDB (or MongoDB-compatible) server instead of a FerretDB
// started for them, e.g. CHATD_TEST_MONGO_URI=mongodb://127.0.0.1:27017/.
const MongoURIEnv = "CHATD_TEST_MONGO_URI"

// Mongo is a MongoDB-wire server for one test: an embedded FerretDB (SQLite
// backend) in a child process, or the server named by CHATD_TEST_MONGO_URI.
type Mongo struct {
	uri  string
	proc *os.Process // the server started for the test; nil for CHATD_TEST_MONGO_URI
}

// URI returns the server's connection string.
func (m *Mongo) URI() string { return m.uri }

// Database returns a fresh database name, unique across calls and processes,
// so that every store under test starts empty.
func (m *Mongo) Database() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "chatd_test_" + hex.EncodeToString(b[:])
}

// StartMongo returns a MongoDB-wire server that lives until the end of t.
//
// With CHATD_TEST_MONGO_URI set it uses that server (callers isolate
// themselves with Database). Otherwise it builds the ferretdbserver helper
// module once per test process (cached in the user cache directory; the
// first cold build takes a minute or more) and starts it on a free loopback
// port with its data in t.TempDir(). If the helper cannot be built (no Go
// toolchain, no module download), the test is skipped, or fails when the CI
// environment variable is set.
func StartMongo(t testing.TB) *Mongo {
	t.Helper()
	if uri := os.Getenv(MongoURIEnv); uri != "" {
		return &Mongo{uri: uri}
	}

	bin, err := ferretDBBinary()
	if err != nil {
		msg := fmt.Sprintf("testserver: no MongoDB-wire server: %v\n"+
			"set %s to a MongoDB URI, or build the helper with\n\tcd internal/testserver/ferretdbserver && go build -o %s .",
			err, MongoURIEnv, ferretDBBinaryPathHint())
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	cmd := exec.Command(bin, "-dir", t.TempDir())
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatalf("testserver: ferretdbserver: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testserver: ferretdbserver: %v", err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testserver: start ferretdbserver: %v", err)
	}
	uri, err := readURILine(stdout, 60*time.Second)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("testserver: ferretdbserver: %v; stderr: %s", err, stderr.String())
	}
	exited := make(chan struct{}) // closed once Wait returned; a stopped server's exit status says nothing
	go func() {
		// Drain stdout after the URI line so the child never blocks on it;
		// Wait only after the last read, as os/exec requires.
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	return &Mongo{uri: uri, proc: cmd.Process}
}

// readURILine reads the helper's "MONGODB_URI=..." line, consuming no more
// of r than that line.
func readURILine(r io.Reader, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		var line []byte
		var b [1]byte
		for {
			n, err := r.Read(b[:])
			if n == 1 {
				if b[0] == '\n' {
					ch <- result{line: string(line)}
					return
				}
				line = append(line, b[0])
			}
			if err != nil {
				ch <- result{err: fmt.Errorf("no URI line: %w", err)}
				return
			}
		}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return "", res.err
		}
		uri, ok := strings.CutPrefix(strings.TrimSpace(res.line), "MONGODB_URI=")
		if !ok {
			return "", fmt.Errorf("unexpected first line %q", res.line)
		}
		return uri, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no URI line after %v", timeout)
	}
}

var ferretDB struct {
	once sync.Once
	bin  string
	err  error
}

// ferretDBBinary builds the ferretdbserver module (once per process) and
// returns the binary's path. go build relinks only when something changed.
func ferretDBBinary() (string, error) {
	ferretDB.once.Do(func() {
		ferretDB.bin, ferretDB.err = buildFerretDB()
	})
	return ferretDB.bin, ferretDB.err
}

func ferretDBBinaryPathHint() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "chatd-test", "ferretdbserver")
	}
	return "ferretdbserver"
}

func buildFerretDB() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testserver sources")
	}
	modDir := filepath.Join(filepath.Dir(file), "ferretdbserver")
	if _, err := os.Stat(filepath.Join(modDir, "go.mod")); err != nil {
		return "", fmt.Errorf("ferretdbserver module: %w", err)
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	outDir := filepath.Join(cacheDir, "chatd-test")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	bin := filepath.Join(outDir, "ferretdbserver")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat(bin); serr == nil {
			return bin, nil // built earlier (make testdeps); cannot check it is current
		}
		return "", fmt.Errorf("go toolchain not found: %w", err)
	}

	// Test binaries of several packages may build at once: serialize them,
	// so that none runs a half-written binary.
	unlock, err := lockFile(filepath.Join(outDir, "ferretdbserver.lock"))
	if err != nil {
		return "", fmt.Errorf("lock build: %w", err)
	}
	defer unlock()

	cmd := exec.Command(goCmd, "build", "-buildvcs=false", "-o", bin, ".")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", modDir, err, bytes.TrimSpace(out.Bytes()))
	}
	return bin, nil
}

// lockedBuffer is a bytes.Buffer safe for a writing child and a reading test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // keep the beginning; it explains failures
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
