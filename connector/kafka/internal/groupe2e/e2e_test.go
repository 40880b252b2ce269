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

	"github.com/runnel-dev/runnel/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m, &binaries) }

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
	produce(t, b.Addr, o.In, in)
	cmd := exec.Command(bin, append(o.args(), "--brokers", b.Addr, "-s", "100ms", "-w", "2")...)
	m := &member{name: "one-process", cmd: cmd, stderr: &proctest.SyncBuffer{}, done: make(chan struct{})}
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
	counts, windows := follow(t, b.Addr, o.Counts), follow(t, b.Addr, o.Windows)
	if !waitFor(t, counts, len(e.counts), time.Minute, m) || !waitFor(t, windows, e.nWin, time.Minute, m) {
		return
	}
	m.stop(t, 30*time.Second)
	checkOutputs(t, b.Addr, o, e)
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

// waitAssigned waits until every member has logged that it was assigned
// partitions (the group gives each member of a group some of the 12
// partitions: 4 input, and 4 per keyed step's repartition topic).
func waitAssigned(t *testing.T, limit time.Duration, ms ...*member) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, m := range ms {
		for len(assignedLines(m)) == 0 {
			if m.exited() || time.Now().After(deadline) {
				t.Errorf("member %s (exited: %v) was not assigned a partition within %v", m.name, m.exited(), limit)
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return true
}

// TestGroupKilledMember: 3 member processes share the input (4
// partitions) while it is being written; one of them, picked at random, is
// SIGKILLed at a random moment, and a new one starts a little later and
// takes partitions over before the rest of the input comes. A
// read_committed reader (franz-go and kcat) then sees every running count
// and every window count exactly once, equal to a one-process run's.
// Seed 4 kills a second member while the group is still taking the first
// one's partitions over (rebalancing, restoring), and starts two.
func TestGroupKilledMember(t *testing.T) {
	runnelBin, bin := bins(t)
	for seed := uint64(1); seed <= 4; seed++ {
		kills := 1
		if seed == 4 {
			kills = 2
		}
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 3))
			o := testOptions()
			b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
			in := makeInput(seed, nKilled, vocab)
			e := expect(in, o)
			app := fmt.Sprint("wc", seed)
			produce(t, b.Addr, o.In, in[:1000])
			ms := []*member{
				startMember(t, bin, "a", b.Addr, app, o),
				startMember(t, bin, "b", b.Addr, app, o),
				startMember(t, bin, "c", b.Addr, app, o),
			}
			counts, windows := follow(t, b.Addr, o.Counts), follow(t, b.Addr, o.Windows)
			if !waitAssigned(t, time.Minute, ms...) || !waitFor(t, counts, 100, time.Minute, ms...) {
				return
			}
			tail := len(in) - 1500
			fed := produceSlowly(t, b.Addr, o.In, in[1000:tail], 200, 40*time.Millisecond)
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			for k := range kills {
				if k > 0 {
					// Within the session timeout (1s) plus the
					// rebalance and restore that follow the first kill.
					time.Sleep(time.Duration(800+rng.IntN(700)) * time.Millisecond)
				}
				i := rng.IntN(len(ms))
				victim := ms[i]
				victim.kill()
				t.Logf("killed member %s after %d of %d running counts", victim.name, counts.count(), len(e.counts))
				ms = slices.Delete(ms, i, i+1)
			}
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
			var added []*member
			for k := range kills {
				added = append(added, startMember(t, bin, string(rune('d'+k)), b.Addr, app, o))
			}
			finish(t, b.Addr, o, e, fed, in[tail:], counts, windows, append(ms, added...), added)
		})
	}
}

// TestGroupScaling: the group goes from 3 members to 2 (one stops with
// SIGTERM: it commits its last epoch and leaves) and then to 4 (two more
// start and take partitions over) while the input is written; nothing is
// lost or doubled.
func TestGroupScaling(t *testing.T) {
	runnelBin, bin := bins(t)
	o := testOptions()
	b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
	in := makeInput(11, nScaling, vocab)
	e := expect(in, o)
	const app = "scaling"
	tail := len(in) * 3 / 4
	fed := produceSlowly(t, b.Addr, o.In, in[:tail], 200, 50*time.Millisecond)
	ms := []*member{
		startMember(t, bin, "a", b.Addr, app, o),
		startMember(t, bin, "b", b.Addr, app, o),
		startMember(t, bin, "c", b.Addr, app, o),
	}
	counts, windows := follow(t, b.Addr, o.Counts), follow(t, b.Addr, o.Windows)
	if !waitAssigned(t, time.Minute, ms...) || !waitFor(t, counts, len(in)/4, time.Minute, ms...) {
		return
	}
	ms[1].stop(t, 30*time.Second)
	t.Logf("3 → 2 after %d of %d running counts", counts.count(), len(e.counts))
	ms = slices.Delete(ms, 1, 2)
	if !waitFor(t, counts, len(in)/2, time.Minute, ms...) {
		return
	}
	t.Logf("2 → 4 after %d of %d running counts", counts.count(), len(e.counts))
	added := []*member{startMember(t, bin, "d", b.Addr, app, o), startMember(t, bin, "e", b.Addr, app, o)}
	finish(t, b.Addr, o, e, fed, in[tail:], counts, windows, append(ms, added...), added)
}

// finish ends a run whose membership changed: once the first part of the
// input is written (fed) and the added members have partitions, it writes
// the rest, waits for every running count and window of e, stops every
// member with SIGTERM and checks the outputs read_committed.
func finish(t *testing.T, addr string, o Options, e expected, fed <-chan struct{}, rest []input,
	counts, windows *progress, ms, added []*member) {
	t.Helper()
	<-fed
	if !waitAssigned(t, time.Minute, added...) {
		return
	}
	produce(t, addr, o.In, rest)
	if !waitFor(t, counts, len(e.counts), 2*time.Minute, ms...) || !waitFor(t, windows, e.nWin, time.Minute, ms...) {
		return
	}
	for _, m := range ms {
		m.stop(t, 30*time.Second)
	}
	checkOutputs(t, addr, o, e)
}

// TestGroupBrokerGone: the broker process is killed under two members.
// Each member exits with status 1 and an error that names its group and
// the unreachable broker (once franz-go gives up a request, or at the
// latest after its broker timeout, the larger of 5s and 3 session
// timeouts), so that a supervisor restarts it and its log says why.
func TestGroupBrokerGone(t *testing.T) {
	runnelBin, bin := bins(t)
	o := testOptions()
	b := startBroker(t, runnelBin, o.In+":4", o.Counts+":4", o.Windows+":4")
	in := makeInput(21, 3000, vocab)
	produce(t, b.Addr, o.In, in)
	ms := []*member{startMember(t, bin, "a", b.Addr, "gone", o), startMember(t, bin, "b", b.Addr, "gone", o)}
	counts := follow(t, b.Addr, o.Counts)
	if !waitFor(t, counts, 500, time.Minute, ms...) {
		return
	}
	counts.close()
	b.Kill()
	for _, m := range ms {
		select {
		case <-m.done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("member %s still runs 2 minutes after its broker was killed:\n%s", m.name, m.stderr.String())
		}
		out := m.stderr.String()
		failed := ""
		for line := range strings.SplitSeq(out, "\n") {
			if strings.Contains(line, `msg="flow failed"`) {
				failed = line
			}
		}
		if code := m.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(failed, "group gone") || !strings.Contains(failed, b.Addr) {
			t.Errorf("member %s: exit status %d; want 1 with a failure naming group gone and broker %s:\n%s", m.name, code, b.Addr, out)
		}
	}
}
