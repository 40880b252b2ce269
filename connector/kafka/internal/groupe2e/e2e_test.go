package groupe2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestOneProcess runs the example without --group, as one process reading
// all four input partitions, and checks that its outputs are the expected
// results the group tests compare against (so that those are what one
// process really writes, not only what the test computes).
func TestOneProcess(t *testing.T) {
	runnelBin, bin := bins(t)
	o := testOptions()
	b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
	in := makeInput(1, 3000, 40)
	e := expect(in, o)
	produce(t, b.addr, o.In, in)
	cmd := exec.Command(bin, append(o.args(), "--brokers", b.addr, "-s", "100ms", "-w", "2")...)
	m := &member{name: "one-process", cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("one process logged:\n%s", m.stderr.String())
		}
	})
	counts, windows := follow(t, b.addr, o.Counts), follow(t, b.addr, o.Windows)
	if !waitFor(t, counts, len(e.counts), time.Minute, m) || !waitFor(t, windows, e.nWin, time.Minute, m) {
		return
	}
	m.stop(t, 30*time.Second)
	checkOutputs(t, b.addr, o, e)
}

// TestBadFlags: the example's own flags and a missing --brokers are usage
// errors (exit 2) naming the flag.
func TestBadFlags(t *testing.T) {
	_, bin := bins(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--window", "0s", "--brokers", "127.0.0.1:1"}, "--window"},
		{[]string{"--in"}, "--in needs a value"},
		{nil, "--brokers"},
		{[]string{"--brokers", "127.0.0.1:1", "extra"}, "unexpected arguments"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("kafkagroup %q: %v, output %q; want exit status 2 naming %q", c.args, err, out, c.want)
		}
	}
}

// Vocabulary and sizes of the group tests' input.
const (
	vocab    = 40
	nKilled  = 6000
	nScaling = 8000
)

// assignedLines are the "partitions assigned" log lines of a member's
// output (it runs with --log-level info).
func assignedLines(m *member) []string {
	var out []string
	for line := range strings.SplitSeq(m.stderr.String(), "\n") {
		if strings.Contains(line, `msg="partitions assigned"`) {
			out = append(out, line)
		}
	}
	return out
}
