// Package proctest helps tests that run Runnel programs as real processes
// on 127.0.0.1: binaries built once per test binary, a buffer a process
// writes while the test reads it, and the development broker
// (`runnel kafka serve`) as a process of its own.
package proctest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// Binaries builds a set of commands, once per test binary, the first time
// a test asks for one. Pkgs maps each binary's name to its package: an
// import path, or a path relative to the test's directory.
type Binaries struct {
	Pkgs map[string]string

	once sync.Once
	dir  string
	err  error
}

// Path returns the path of the built binary name. Under -short the test
// is skipped: building and running processes takes seconds.
func (b *Binaries) Path(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds binaries and runs processes")
	}
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "runnel-proctest-")
		if b.err != nil {
			return
		}
		for n, pkg := range b.Pkgs {
			out, err := exec.Command("go", "build", "-o", filepath.Join(b.dir, n), pkg).CombinedOutput()
			if err != nil {
				b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	if _, ok := b.Pkgs[name]; !ok {
		t.Fatalf("proctest: no binary %q among %v", name, b.Pkgs)
	}
	return filepath.Join(b.dir, name)
}

// Remove deletes the built binaries (from TestMain, after the tests).
func (b *Binaries) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// Main is a TestMain for packages that build binaries: it runs the tests,
// deletes the binaries of bins (a test binary that exits leaves no copy of
// them in the temporary directory), checks for leaked goroutines when the
// tests passed, and exits.
func Main(m *testing.M, bins ...*Binaries) {
	code := m.Run()
	for _, b := range bins {
		b.Remove()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// SyncBuffer is a bytes.Buffer that a process (or a logger) writes while
// the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DevBroker is a `runnel kafka serve` process.
type DevBroker struct {
	// Addr is the host:port the broker listens on.
	Addr string

	cmd  *exec.Cmd
	done chan struct{}
}

// StartDevBroker starts `runnelBin kafka serve` with args (--addr, --topic
// ...) and returns once it listens; it is stopped with SIGTERM at the end
// of the test.
func StartDevBroker(t testing.TB, runnelBin string, args ...string) *DevBroker {
	t.Helper()
	cmd := exec.Command(runnelBin, append([]string{"kafka", "serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &DevBroker{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT) // in case a test paused it
		cmd.Process.Signal(syscall.SIGTERM)
		<-b.done
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("broker did not start: %v", err)
	}
	// "kafka-protocol broker (kfake) listening on HOST:PORT ..."
	f := strings.Fields(line)
	if len(f) < 6 || f[4] != "on" {
		t.Fatalf("broker printed %q", line)
	}
	b.Addr = f[5]
	return b
}

// Kill stops the broker at once (SIGKILL) and waits for it.
func (b *DevBroker) Kill() {
	b.cmd.Process.Kill()
	<-b.done
}

// Signal sends sig to the broker (SIGSTOP and SIGCONT pause and resume it).
func (b *DevBroker) Signal(sig os.Signal) error { return b.cmd.Process.Signal(sig) }
