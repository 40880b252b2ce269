package group_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/proctest"
)

// startServing starts a member like startMember, serving its API on a
// listener of its own (--api-addr in a deployment).
func startServing(ctx context.Context, t *testing.T, flow *runnel.Dataflow, brokers []string, workers int, logs io.Writer) (*member, string) {
	t.Helper()
	cfg, _, err := runnel.ParseConfig("test", []string{"--group", "app", "--brokers", strings.Join(brokers, ","),
		"-w", strconv.Itoa(workers), "-s", "0.2", "--group-session-timeout", "1s", "--group-transaction-timeout", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &member{stop: make(chan struct{}), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		m.done <- runnel.Run(ctx, flow, cfg, runnel.WithStop(m.stop), runnel.WithLogger(log), runnel.WithAPIListener(ln))
	}()
	return m, "http://" + ln.Addr().String()
}

// scrape sums the samples of metric whose labels contain every label.
func scrape(t *testing.T, base, metric string, labels ...string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		name, rest, _ := strings.Cut(line, "{")
		if name != metric {
			if n, v, ok := strings.Cut(line, " "); ok && n == metric && len(labels) == 0 {
				f, _ := strconv.ParseFloat(v, 64)
				sum, found = sum+f, true
			}
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(rest[strings.LastIndex(rest, " ")+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum, found = sum+f, true
	}
	return sum, found
}

// A member serves --api-addr as a run in one process does: /metrics with
// its workers' step counters and its commits, /dataflow, the web view; and
// the counters keep growing when a rebalance rebuilds its engine.
func TestMemberServesAPI(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 2})
	flow := countFlow(brokers)
	const first, second = 400, 40
	produce(t, brokers, "in", words(0, first)...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs proctest.SyncBuffer
	a, api := startServing(ctx, t, flow, brokers, 2, &logs)
	checkExactlyOnce(t, readCounts(t, brokers, first, time.Minute), first)

	count := `step="group_count.count"`
	before, ok := scrape(t, api, "runnel_step_items_in_total", count)
	if !ok || before < first {
		t.Fatalf("runnel_step_items_in_total{%s} = %v (found %v) after %d words, want at least %d", count, before, ok, first, first)
	}
	if epochs, ok := scrape(t, api, "runnel_recovery_committed_epoch"); !ok || epochs < 1 {
		t.Errorf("runnel_recovery_committed_epoch = %v (found %v), want the member's commits", epochs, ok)
	}
	if workers, _ := scrape(t, api, "runnel_run_workers"); workers != 2 {
		t.Errorf("runnel_run_workers = %v, want 2", workers)
	}
	for _, path := range []string{"/dataflow", "/api/state", "/"} {
		resp, err := http.Get(api + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if l := logs.String(); !strings.Contains(l, `msg="flow started"`) || !strings.Contains(l, "group=app") || !strings.Contains(l, "api="+api+"/") {
		t.Errorf("no start line naming the group and the API address in:\n%s", l)
	}

	// A second member takes some partitions: the first one rebuilds its
	// engine, and its counters go on from where they were. Fewer words
	// follow than came before, so counters that restarted at 0 with the
	// new engine would fall below the value read above.
	b := startMember(ctx, t, flow, brokers, 1)
	deadline := time.Now().Add(time.Minute)
	for strings.Count(logs.String(), `msg="restored state"`) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), `msg="restored state"`); n < 2 {
		t.Fatalf("the first member did not rebuild after the second joined (%d rebuilds):\n%s", n, logs.String())
	}
	produce(t, brokers, "in", words(first, first+second)...)
	checkExactlyOnce(t, readCounts(t, brokers, first+second, time.Minute), first+second)
	after, _ := scrape(t, api, "runnel_step_items_in_total", count)
	if after < before {
		t.Errorf("runnel_step_items_in_total{%s} fell from %v to %v across a rebalance; counters must carry on", count, before, after)
	}
	b.end(t)
	a.end(t)
	// The last line names the group, not an epoch of a recovery directory.
	if l := logs.String(); !strings.Contains(l, `msg="flow stopped" flow=group_count group=app`) || strings.Contains(l, "resume_epoch") {
		t.Errorf("the stop line does not name the group (or names a resume epoch):\n%s", l)
	}
}
