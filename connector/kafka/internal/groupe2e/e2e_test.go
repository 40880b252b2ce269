package groupe2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
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

// TestGroupKilledMember: 3 member processes share the input (4
// partitions) while it is being written; one of them, picked at random, is
// SIGKILLed at a random moment, and a new one starts a little later. A
// read_committed reader (franz-go and kcat) then sees every running count
// and every window count exactly once, equal to a one-process run's.
func TestGroupKilledMember(t *testing.T) {
	runnelBin, bin := bins(t)
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			o := testOptions()
			b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
			in := makeInput(seed, nKilled, vocab)
			e := expect(in, o)
			app := fmt.Sprint("wc", seed)
			produce(t, b.addr, o.In, in[:1000])
			ms := []*member{
				startMember(t, bin, "a", b.addr, app, o),
				startMember(t, bin, "b", b.addr, app, o),
				startMember(t, bin, "c", b.addr, app, o),
			}
			counts, windows := follow(t, b.addr, o.Counts), follow(t, b.addr, o.Windows)
			if !waitFor(t, counts, 100, time.Minute, ms...) {
				return
			}
			fed := produceSlowly(t, b.addr, o.In, in[1000:], 200, 40*time.Millisecond)
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			i := rng.IntN(len(ms))
			victim := ms[i]
			victim.kill()
			t.Logf("killed member %s after %d of %d running counts; it had logged %d assignments", victim.name, counts.count(), len(e.counts), len(assignedLines(victim)))
			ms = slices.Delete(ms, i, i+1)
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
			ms = append(ms, startMember(t, bin, "d", b.addr, app, o))
			<-fed
			if !waitFor(t, counts, len(e.counts), 2*time.Minute, ms...) || !waitFor(t, windows, e.nWin, time.Minute, ms...) {
				return
			}
			for _, m := range ms {
				m.stop(t, 30*time.Second)
			}
			checkOutputs(t, b.addr, o, e)
			if len(assignedLines(ms[len(ms)-1])) == 0 {
				t.Errorf("the member started after the kill was never assigned a partition")
			}
		})
	}
}

// TestGroupScaling: the group goes from 3 members to 2 (one stops with
// SIGTERM: it commits its last epoch and leaves) and then to 4 (two more
// start) while the input is written; nothing is lost or doubled, and the
// new members take partitions over.
func TestGroupScaling(t *testing.T) {
	runnelBin, bin := bins(t)
	o := testOptions()
	b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
	in := makeInput(11, nScaling, vocab)
	e := expect(in, o)
	const app = "scaling"
	fed := produceSlowly(t, b.addr, o.In, in, 200, 50*time.Millisecond)
	ms := []*member{
		startMember(t, bin, "a", b.addr, app, o),
		startMember(t, bin, "b", b.addr, app, o),
		startMember(t, bin, "c", b.addr, app, o),
	}
	counts, windows := follow(t, b.addr, o.Counts), follow(t, b.addr, o.Windows)
	if !waitFor(t, counts, len(in)/4, time.Minute, ms...) {
		return
	}
	ms[1].stop(t, 30*time.Second)
	t.Logf("3 → 2 after %d of %d running counts", counts.count(), len(e.counts))
	ms = slices.Delete(ms, 1, 2)
	if !waitFor(t, counts, len(in)/2, time.Minute, ms...) {
		return
	}
	t.Logf("2 → 4 after %d of %d running counts", counts.count(), len(e.counts))
	added := []*member{startMember(t, bin, "d", b.addr, app, o), startMember(t, bin, "e", b.addr, app, o)}
	ms = append(ms, added...)
	<-fed
	if !waitFor(t, counts, len(e.counts), 2*time.Minute, ms...) || !waitFor(t, windows, e.nWin, time.Minute, ms...) {
		return
	}
	for _, m := range ms {
		m.stop(t, 30*time.Second)
	}
	checkOutputs(t, b.addr, o, e)
	for _, m := range added {
		if len(assignedLines(m)) == 0 {
			t.Errorf("member %s, added to a group of 2, was never assigned a partition", m.name)
		}
	}
}
