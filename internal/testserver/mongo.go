package testserver

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MongoURIEnv names the environment variable that points the tests at an
// existing MongoDB (or MongoDB-compatible) server instead of a FerretDB
// started for them, e.g. CHATD_TEST_MONGO_URI=mongodb://127.0.0.1:27017/.
const MongoURIEnv = "CHATD_TEST_MONGO_URI"

// PostgresURLEnv names the environment variable with the PostgreSQL server
// that the FerretDB test server keeps its data on (DefaultPostgresURL when
// unset). FerretDBBackendEnv set to "sqlite" or "postgresql" picks FerretDB's
// backend instead of PostgreSQL with a fallback to SQLite.
const (
	PostgresURLEnv     = "CHATD_TEST_POSTGRES_URL"
	FerretDBBackendEnv = "CHATD_TEST_FERRETDB_BACKEND"
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres"
)

// exitNoPostgreSQL is ferretdbserver's exit status when it cannot reach
// PostgreSQL.
const exitNoPostgreSQL = 3

// Mongo is a MongoDB-wire server for one test: an embedded FerretDB in a
// child process, or the server named by CHATD_TEST_MONGO_URI.
type Mongo struct {
	uri     string
	backend string
	proc    *os.Process // the server started for the test; nil for CHATD_TEST_MONGO_URI
}

// URI returns the server's connection string.
func (m *Mongo) URI() string { return m.uri }

// Backend says what serves the data: "postgresql" or "sqlite" (FerretDB's
// backends), or "external" (CHATD_TEST_MONGO_URI).
func (m *Mongo) Backend() string { return m.backend }

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
// port. The helper keeps its data in a fresh PostgreSQL database of its own
// on CHATD_TEST_POSTGRES_URL (default DefaultPostgresURL; dropped when the
// server stops), where the indexes serve the queries. When that PostgreSQL
// cannot be reached it falls back, saying so once on standard error, to
// FerretDB's SQLite backend in t.TempDir(), which scans whole collections;
// with the CI environment variable set it fails instead. If the helper
// cannot be built (no Go toolchain, no module download), the test is
// skipped, or fails when CI is set.
func StartMongo(t testing.TB) *Mongo {
	t.Helper()
	if uri := os.Getenv(MongoURIEnv); uri != "" {
		return &Mongo{uri: uri, backend: "external"}
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

	backend := os.Getenv(FerretDBBackendEnv)
	switch backend {
	case "", "postgresql", "sqlite":
	default:
		t.Fatalf("testserver: %s=%q, want postgresql or sqlite", FerretDBBackendEnv, backend)
	}
	if backend == "" && postgresMissing.Load() {
		backend = "sqlite"
	}
	if backend != "sqlite" {
		pgURL := cmp.Or(os.Getenv(PostgresURLEnv), DefaultPostgresURL)
		uri, proc, stderr, err := startFerretDB(t, bin, "-postgresql", pgURL)
		if err == nil {
			return &Mongo{uri: uri, backend: "postgresql", proc: proc}
		}
		if exitErr := (*exec.ExitError)(nil); backend != "" || !errors.As(err, &exitErr) || exitErr.ExitCode() != exitNoPostgreSQL {
			t.Fatalf("testserver: ferretdbserver: %v; stderr: %s", err, stderr)
		}
		msg := fmt.Sprintf("testserver: no PostgreSQL for FerretDB at %s (%s)", pgURL, strings.TrimSpace(stderr))
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; scripts/testdeps.sh starts it, or set %s", msg, PostgresURLEnv)
		}
		if postgresMissing.CompareAndSwap(false, true) {
			fmt.Fprintf(os.Stderr, "%s: falling back to FerretDB's SQLite backend, which scans whole collections "+
				"(slow with many documents); run scripts/testdeps.sh to start PostgreSQL\n", msg)
		}
		t.Logf("%s: using FerretDB's SQLite backend", msg)
	}
	uri, proc, stderr, err := startFerretDB(t, bin, "-dir", t.TempDir())
	if err != nil {
		t.Fatalf("testserver: ferretdbserver: %v; stderr: %s", err, stderr)
	}
	return &Mongo{uri: uri, backend: "sqlite", proc: proc}
}

// postgresMissing is set once a ferretdbserver found no PostgreSQL: the
// later servers of the process go straight to SQLite.
var postgresMissing atomic.Bool

// startFerretDB starts bin with args and returns its URI and process,
// stopping it at the end of t. On failure it returns what the helper wrote
// on standard error, and an *exec.ExitError when it exited.
func startFerretDB(t testing.TB, bin string, args ...string) (uri string, proc *os.Process, stderrText string, err error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		return "", nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, "", err
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, "", fmt.Errorf("start: %w", err)
	}
	uri, err = readURILine(stdout, 60*time.Second)
	if err != nil {
		_ = cmd.Process.Kill()
		if werr := cmd.Wait(); werr != nil {
			var exitErr *exec.ExitError
			if errors.As(werr, &exitErr) {
				err = fmt.Errorf("%w (%w)", err, exitErr)
			}
		}
		return "", nil, stderr.String(), err
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
		_ = stdin.Close() // the helper drops its PostgreSQL database as it exits
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	return uri, cmd.Process, "", nil
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

func buildFerretDB() (string, error) { return buildHelper("ferretdbserver") }

// buildHelper builds the helper command module in internal/testserver/name
// into the user cache directory, one binary per version of its sources,
// and returns the binary's path.
func buildHelper(name string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testserver sources")
	}
	modDir := filepath.Join(filepath.Dir(file), name)
	if _, err := os.Stat(filepath.Join(modDir, "go.mod")); err != nil {
		return "", fmt.Errorf("%s module: %w", name, err)
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	outDir := filepath.Join(cacheDir, "chatd-test")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	bin := filepath.Join(outDir, name)
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
	// One binary per version of the sources: worktrees or checkouts at
	// different versions share the cache directory, and one must never run
	// the binary another just built from other sources.
	sum, err := sourceSum(modDir)
	if err != nil {
		return "", fmt.Errorf("%s module: %w", name, err)
	}
	bin = filepath.Join(outDir, name+"-"+sum)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}

	// Test binaries of several packages may build at once: serialize them,
	// so that none runs a half-written binary.
	unlock, err := lockFile(filepath.Join(outDir, name+".lock"))
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

// sourceSum returns a short hash of the module's go.mod, go.sum and Go
// sources in dir.
func sourceSum(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = append(names, filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum"))
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(name), len(b))
		_, _ = h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
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
