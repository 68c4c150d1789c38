package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Server is a `chatd serve --role=all` that bench started itself, on a
// fresh data directory, optionally pinned to CPUs with taskset.
type Server struct {
	URL        string
	MetricsURL string // /metrics on its ops listener (http.ops_addr)
	PID        int
	cmd        *exec.Cmd
	dir        string
	done       chan error
}

// benchServerEnv lifts the per-user and per-address limits that would
// otherwise throttle a load generator signing up hundreds of users from
// one address and sending thousands of messages a second.
var benchServerEnv = []string{
	"CHATD_AUTH_SIGNUP_LIMIT=0",
	"CHATD_AUTH_LOGIN_RATE_LIMIT=0",
	"CHATD_CHAT_SEND_RATE=1e6",
	"CHATD_CHAT_SEND_BURST=1000000",
	"CHATD_CHAT_MAX_SOCKETS_PER_USER=1000000",
	"CHATD_CHAT_MAX_SOCKETS_PER_ADDR=1000000",
	"CHATD_HTTP_MAX_CONNS=0",
	"CHATD_HTTP_MAX_CONNS_PER_ADDR=0",
}

// StartServer runs this executable's `serve --role=all` on a free loopback
// port and a temporary data directory. With cpus set ("0" or "0,1") it
// runs under `taskset -c cpus` and the server picks GOMAXPROCS itself, as on
// a 1-vCPU machine: the runtime's default is the CPU count of its affinity
// mask, and chatd adds runtime.extra_procs with the SQLite store
// (app/procs.go). GOMAXPROCS in bench's own environment still reaches the
// server and wins. The server's log goes to logPath when set.
func StartServer(ctx context.Context, cpus, logPath string, extra ...string) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: own executable: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	opsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatd-bench-*")
	if err != nil {
		return nil, err
	}
	args := append([]string{exe, "serve", "--role=all"}, extra...)
	env := append(os.Environ(), benchServerEnv...)
	env = append(env, "CHATD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "CHATD_HTTP_OPS_ADDR=127.0.0.1:"+strconv.Itoa(opsPort), "CHATD_DATA_DIR="+dir)
	if cpus != "" {
		if _, err := cpuCount(cpus); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ts, err := exec.LookPath("taskset")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("bench: --server-cpus needs taskset (util-linux): %w", err)
		}
		args = append([]string{ts, "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = dir // no ./config.yaml of the caller's directory is read
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), MetricsURL: "http://127.0.0.1:" + strconv.Itoa(opsPort) + "/metrics", PID: cmd.Process.Pid, cmd: cmd, dir: dir, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("bench: server exited before ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("bench: server not ready after 30 s")
		}
	}
}

// Stop ends the server with SIGTERM (SIGKILL after 10 s) and removes its
// data directory.
func (s *Server) Stop() {
	defer os.RemoveAll(s.dir)
	_ = s.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		err = <-s.done
	}
	_ = err // the exit status of a server asked to stop is of no interest
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// parseCPUs reads a taskset-style list ("1", "0,2", "0-3").
func parseCPUs(list string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bench: bad CPU list %q", list)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bench: bad CPU list %q", list)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

func cpuCount(list string) (int, error) {
	cs, err := parseCPUs(list)
	return len(cs), err
}

// PinSelf pins every thread of this process to the CPUs in list and sets
// GOMAXPROCS to their count. Threads the runtime starts later inherit the
// mask from the thread that creates them, so pinning the existing ones
// pins the process.
func PinSelf(list string) error {
	cs, err := parseCPUs(list)
	if err != nil {
		return err
	}
	var set unix.CPUSet
	for _, c := range cs {
		set.Set(c)
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(os.Getpid()), "task"))
	if err != nil {
		return fmt.Errorf("bench: --client-cpus: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("bench: --client-cpus %s: %w", list, err)
		}
	}
	runtime.GOMAXPROCS(len(cs))
	return nil
}

// procStats is a process's CPU time and memory, from /proc.
type procStats struct {
	CPUSeconds float64 // user + system
	RSSBytes   int64   // VmRSS
	HWMBytes   int64   // VmHWM, the peak RSS
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

// readProcs sums readProc over pids (the processes of a split
// deployment); VmHWM is summed too, so HWMBytes bounds the peaks from above.
func readProcs(pids []int) (procStats, error) {
	each, err := readEach(pids)
	var sum procStats
	for _, st := range each {
		sum.CPUSeconds += st.CPUSeconds
		sum.RSSBytes += st.RSSBytes
		sum.HWMBytes += st.HWMBytes
	}
	return sum, err
}

// readEach reads each of pids, in their order; on an error it returns
// what it read before.
func readEach(pids []int) ([]procStats, error) {
	out := make([]procStats, 0, len(pids))
	for _, pid := range pids {
		st, err := readProc(pid)
		if err != nil {
			return out, err
		}
		out = append(out, st)
	}
	return out, nil
}

func readProc(pid int) (procStats, error) {
	var st procStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name (field 2) may hold spaces: the fields after it
	// start past the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return st, errors.New("bench: unreadable /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return st, errors.New("bench: short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	st.CPUSeconds = (ut + stt) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.RSSBytes = kb * 1024
		case "VmHWM":
			st.HWMBytes = kb * 1024
		}
	}
	return st, nil
}
