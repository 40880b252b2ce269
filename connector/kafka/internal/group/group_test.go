package group_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/connector/kafka/internal/group"
	"github.com/runnel-dev/runnel/internal/testflow"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts an in-process Kafka-protocol broker with topics.
func cluster(t testing.TB, topics map[string]int32) []string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func produce(t testing.TB, brokers []string, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// countFlow is a keyed running count: "word" values in, ("word", n) out
// as JSON [word, n] to topic out.
func countFlow(brokers []string) *runnel.Dataflow {
	flow := runnel.NewDataflow("group_count")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}))
	words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
	keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
	counts := op.StatefulMap("count", keyed, func(n int, _ bool, _ kafka.Record[string, string]) (int, bool, int) {
		return n + 1, true, n + 1
	})
	encoded := kafka.Encode("encode", counts, "out", kafka.String(), kafka.JSON[int]())
	op.Output("out", encoded, kafka.NewSink(brokers, kafka.ExactlyOnce()))
	return flow
}

// member runs a flow in group mode until stop closes or ctx ends.
type member struct {
	stop chan struct{}
	done chan error
}

func startMember(ctx context.Context, t testing.TB, flow *runnel.Dataflow, brokers []string, workers int) *member {
	t.Helper()
	cfg, _, err := runnel.ParseConfig("test", []string{"--group", "app", "--brokers", strings.Join(brokers, ","),
		"-w", strconv.Itoa(workers), "-s", "0.2", "--group-session-timeout", "1s", "--group-transaction-timeout", "3s"})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{stop: make(chan struct{}), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { m.done <- runnel.Run(ctx, flow, cfg, runnel.WithStop(m.stop), runnel.WithLogger(log)) }()
	return m
}

func (m *member) end(t testing.TB) {
	t.Helper()
	close(m.stop)
	select {
	case err := <-m.done:
		var stopped *runnel.InterruptedError
		if !errors.As(err, &stopped) {
			t.Errorf("member stopped with %v, want an InterruptedError", err)
		}
	case <-time.After(60 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("member did not stop within a minute; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// readCounts reads topic out read_committed until want results are there
// (or the deadline), and returns every (word, n) pair.
func readCounts(t testing.TB, brokers []string, want int, within time.Duration) map[string][]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]int{}
	n := 0
	deadline := time.Now().Add(within)
	for n < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var c int
			if err := json.Unmarshal(r.Value, &c); err != nil {
				t.Fatalf("output %q: %v", r.Value, err)
			}
			got[string(r.Key)] = append(got[string(r.Key)], c)
			n++
		})
	}
	return got
}

func words(from, to int) []*kgo.Record {
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		w := "w" + strconv.Itoa(i%37)
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(w)})
	}
	return recs
}

// checkExactlyOnce checks that every word's counts are 1..n, each once,
// n being how often the word was in the first total inputs.
func checkExactlyOnce(t *testing.T, got map[string][]int, total int) {
	t.Helper()
	want := map[string]int{}
	for i := range total {
		want["w"+strconv.Itoa(i%37)]++
	}
	for w, n := range want {
		seen := map[int]int{}
		for _, c := range got[w] {
			seen[c]++
		}
		for c := 1; c <= n; c++ {
			if seen[c] != 1 {
				t.Errorf("word %s: count %d emitted %d times, want once (all: %v)", w, c, seen[c], got[w])
				break
			}
		}
		if len(got[w]) != n {
			t.Errorf("word %s: %d results, want %d", w, len(got[w]), n)
		}
	}
}

func TestRunningCountOnThreeMembers(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const half = 3000
	produce(t, brokers, "in", words(0, half)...)
	var ms []*member
	for range 3 {
		ms = append(ms, startMember(ctx, t, countFlow(brokers), brokers, 2))
	}
	got := readCounts(t, brokers, half/2, 60*time.Second)
	if len(got) == 0 {
		t.Fatal("no output from the group")
	}
	// A member leaves mid-run: its partitions and key groups move to the
	// other two, which restore its state from the changelogs.
	ms[2].end(t)
	produce(t, brokers, "in", words(half, 2*half)...)
	got = readCounts(t, brokers, 2*half, 90*time.Second)
	checkExactlyOnce(t, got, 2*half)
	var wg sync.WaitGroup
	for _, m := range ms[:2] {
		wg.Go(func() { m.end(t) })
	}
	wg.Wait()
}

var _ = fmt.Sprint

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// familiesFlow is every stateful operator family (internal/testflow) over
// the ints of topic in, each output line written to topic out.
func familiesFlow(brokers []string, out string) *runnel.Dataflow {
	return testflow.FamiliesFrom(func(flow *runnel.Dataflow) runnel.Stream[int] {
		msgs := op.Input("inp", flow, kafka.NewSource(brokers, []string{"in"}))
		return op.Map("parse", msgs, func(m kafka.Message) int {
			n, err := strconv.Atoi(string(m.Value))
			if err != nil {
				panic(err)
			}
			return n
		})
	}, familyKeys, func(s runnel.Stream[testflow.Rec]) {
		msgs := op.Map("encode", s, func(r testflow.Rec) kafka.Message {
			return kafka.Message{Topic: out, Key: []byte(strconv.Itoa(r.Key)), Value: []byte(r.String())}
		})
		op.Output("out", msgs, kafka.NewSink(brokers, kafka.ExactlyOnce()))
	})
}

const familyKeys = 8 // a multiple of the input's 4 partitions: a key's items stay in order

func ints(from, to int) []*kgo.Record {
	var recs []*kgo.Record
	for x := from; x < to; x++ {
		recs = append(recs, &kgo.Record{Partition: int32(x % 4), Value: []byte(strconv.Itoa(x))})
	}
	return recs
}

func produceManual(t *testing.T, brokers []string, topic string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readLines reads topic read_committed until it holds want lines of step
// stateful_map (one per input item), and returns every line.
func readLines(t *testing.T, brokers []string, topic string, want int, within time.Duration) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var lines []string
	n := 0
	deadline := time.Now().Add(within)
	for n < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			lines = append(lines, string(r.Value))
			if strings.HasPrefix(string(r.Value), "stateful_map ") {
				n++
			}
		})
	}
	if n < want {
		t.Fatalf("topic %s: %d stateful_map lines after %v, want %d", topic, n, within, want)
	}
	return lines
}

// TestEveryFamilyAsInOneProcess runs every stateful operator family in
// group mode on 3 members, one of which leaves mid-run (its key groups
// move with their state), and checks that the output is exactly that of a
// one-process run stopped after the same input: every line once.
func TestEveryFamilyAsInOneProcess(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3, "ref": 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 1600
	produceManual(t, brokers, "in", ints(0, n/2)...)

	// The reference: one process, stopped (not ended) after all input.
	stopRef := reference(ctx, t, brokers)

	var ms []*member
	for range 3 {
		ms = append(ms, startMember(ctx, t, familiesFlow(brokers, "out"), brokers, 2))
	}
	readLines(t, brokers, "out", n/4, 60*time.Second)
	ms[2].end(t)
	produceManual(t, brokers, "in", ints(n/2, n)...)

	readLines(t, brokers, "ref", n, 60*time.Second)
	stopRef()
	readLines(t, brokers, "out", n, 60*time.Second)
	for _, m := range ms[:2] {
		m.end(t)
	}
	sameAsReference(t, brokers, n, "with a member leaving")
}

// reference runs the families flow in one process, writing to topic ref;
// stop ends it with a graceful stop (no end-of-input logic).
func reference(ctx context.Context, t *testing.T, brokers []string) (stop func()) {
	t.Helper()
	cfg, _, err := runnel.ParseConfig("test", []string{"-w", "2", "-s", "0.2"})
	if err != nil {
		t.Fatal(err)
	}
	stopc := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- runnel.Run(ctx, familiesFlow(brokers, "ref"), cfg, runnel.WithStop(stopc)) }()
	return func() {
		close(stopc)
		if err := <-done; err != nil {
			var stopped *runnel.InterruptedError
			if !errors.As(err, &stopped) {
				t.Fatal(err)
			}
		}
	}
}

// sameAsReference compares every line of topics ref and out (n input
// items), read once both flows are stopped, and checks that the
// comparison covers the families that emit before the end of input.
func sameAsReference(t *testing.T, brokers []string, n int, what string) {
	t.Helper()
	want := readLines(t, brokers, "ref", n, 10*time.Second)
	got := readLines(t, brokers, "out", n, 10*time.Second)
	slices.Sort(want)
	slices.Sort(got)
	steps := map[string]int{}
	for _, l := range want {
		step, _, _ := strings.Cut(l, " ")
		steps[step]++
	}
	for _, step := range []string{"stateful_map", "stateful_flat_map", "collect", "count_window", "collect_window",
		"session_window", "sliding_window"} {
		if steps[step] == 0 {
			t.Errorf("step %s emitted nothing in one process: the comparison would not test it (%v)", step, steps)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("group output %s differs from one process (-one process +group):\n%s", what, diff)
	}
}

// runOnce runs flow as a member with args added and returns its error,
// stopping it after within if it is still running.
func runOnce(t *testing.T, flow *runnel.Dataflow, brokers []string, within time.Duration, args ...string) error {
	t.Helper()
	cfg, _, err := runnel.ParseConfig("test", append([]string{"--group", "app", "--brokers", strings.Join(brokers, ","),
		"-s", "0.2", "--group-session-timeout", "1s", "--group-transaction-timeout", "3s"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	timer := time.AfterFunc(within, func() { close(stop) })
	defer timer.Stop()
	return runnel.Run(context.Background(), flow, cfg, runnel.WithStop(stop))
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestRefusedSetups(t *testing.T) {
	t.Run("internal topic with too few partitions", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3, "app.group_count.count.changelog": 2})
		err := runOnce(t, countFlow(brokers), brokers, 10*time.Second)
		wantErr(t, err, "app.group_count.count.changelog has 2 partitions", "needs 4")
	})
	t.Run("input topic missing", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"out": 3})
		wantErr(t, runOnce(t, countFlow(brokers), brokers, 10*time.Second), `input topic "in" does not exist`)
	})
	t.Run("changelog of another flow", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
		var stopped *runnel.InterruptedError
		if err := runOnce(t, countFlow(brokers), brokers, 500*time.Millisecond); !errors.As(err, &stopped) {
			t.Fatalf("first run: %v", err)
		}
		other := runnel.NewDataflow("other_flow")
		msgs := op.Input("in", other, kafka.NewSource(brokers, []string{"in"}))
		op.Output("out", msgs, kafka.NewSink(brokers, kafka.Topic("out")))
		wantErr(t, runOnce(t, other, brokers, 10*time.Second), `written by dataflow "group_count", this is "other_flow"`, "app.meta")
	})
	t.Run("key groups changed", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
		var stopped *runnel.InterruptedError
		if err := runOnce(t, countFlow(brokers), brokers, 500*time.Millisecond); !errors.As(err, &stopped) {
			t.Fatalf("first run: %v", err)
		}
		wantErr(t, runOnce(t, countFlow(brokers), brokers, 10*time.Second, "--key-groups", "8"),
			"--key-groups 8, but the application has 4 key groups", "new --group")
	})
	t.Run("state type changed", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
		var stopped *runnel.InterruptedError
		if err := runOnce(t, countFlow(brokers), brokers, 500*time.Millisecond); !errors.As(err, &stopped) {
			t.Fatalf("first run: %v", err)
		}
		flow := runnel.NewDataflow("group_count")
		msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}))
		words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
		keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
		counts := op.StatefulMap("count", keyed, func(n string, _ bool, _ kafka.Record[string, string]) (string, bool, int) {
			return n + "x", true, len(n) + 1
		})
		op.Output("out", kafka.Encode("encode", counts, "out", kafka.String(), kafka.JSON[int]()), kafka.NewSink(brokers))
		wantErr(t, runOnce(t, flow, brokers, 10*time.Second), "step group_count.count: its state type changed")
	})
	t.Run("another flow version in the group", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		m := startMember(ctx, t, countFlow(brokers), brokers, 1)
		defer m.end(t)
		// Wait until the first member is in the group.
		produce(t, brokers, "in", words(0, 10)...)
		readCounts(t, brokers, 10, 30*time.Second)
		flow := runnel.NewDataflow("group_count")
		msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}))
		words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
		words = op.Filter("nonempty", words, func(r kafka.Record[string, string]) bool { return r.Value != "" })
		keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
		counts := op.StatefulMap("count", keyed, func(n int, _ bool, _ kafka.Record[string, string]) (int, bool, int) {
			return n + 1, true, n + 1
		})
		op.Output("out", kafka.Encode("encode", counts, "out", kafka.String(), kafka.JSON[int]()), kafka.NewSink(brokers))
		wantErr(t, runOnce(t, flow, brokers, 10*time.Second), "runs another version of the flow", `this process runs dataflow "group_count" version`)
	})
	t.Run("input that is not Kafka", func(t *testing.T) {
		brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
		flow := runnel.NewDataflow("not_kafka")
		nums := op.Input("nums", flow, runneltest.NewSource([]int{1, 2, 3}))
		op.Output("out", op.Map("msg", nums, func(n int) kafka.Message { return kafka.Message{Topic: "out", Value: []byte(strconv.Itoa(n))} }), kafka.NewSink(brokers))
		wantErr(t, runOnce(t, flow, brokers, 10*time.Second), "step not_kafka.nums: group mode reads only Kafka sources")
	})
}

func TestBrokerDisappears(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.SeedTopics(4, "in"), kfake.SeedTopics(3, "out"))
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.ListenAddrs()
	produce(t, brokers, "in", words(0, 100)...)
	done := make(chan error, 1)
	go func() { done <- runOnce(t, countFlow(brokers), brokers, time.Minute) }()
	readCounts(t, brokers, 100, 30*time.Second)
	c.Close()
	select {
	case err := <-done:
		wantErr(t, err, "unreachable", brokers[0])
		t.Logf("the member failed with: %v", err)
	case <-time.After(45 * time.Second):
		t.Fatal("the member did not notice that its broker is gone")
	}
}

// notifyFlow counts words and, 2s after a word's last item, emits its
// count again from a timer: "item n" then "notify n".
func notifyFlow(brokers []string) *runnel.Dataflow {
	flow := runnel.NewDataflow("group_notify")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}))
	words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
	keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
	out := op.Stateful("notify", keyed,
		func(c *op.Context[string, string], n int, _ bool, _ kafka.Record[string, string]) (int, bool) {
			c.NotifyAt(c.Now().Add(2 * time.Second))
			c.Emit("item " + strconv.Itoa(n+1))
			return n + 1, true
		},
		op.OnNotify(func(c *op.Context[string, string], n int) (int, bool) {
			c.Emit("notify " + strconv.Itoa(n))
			return n, true
		}))
	op.Output("out", kafka.Encode("encode", out, "out", kafka.String(), kafka.String()), kafka.NewSink(brokers))
	return flow
}

// TestTimerDueWhenAMemberStarts: a member that takes over keys whose
// timers are already due fires them at once, inside its transaction.
func TestTimerDueWhenAMemberStarts(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produce(t, brokers, "in", words(0, 74)...) // every word twice
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var lines []string
	readUntil := func(prefix string, n int) {
		deadline := time.Now().Add(30 * time.Second)
		for countPrefix(lines, prefix) < n && time.Now().Before(deadline) {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { lines = append(lines, string(r.Value)) })
			cancel()
		}
	}
	a := startMember(ctx, t, notifyFlow(brokers), brokers, 1)
	readUntil("item ", 74)
	a.end(t) // before its timers are due: they are in the changelog
	if n := countPrefix(lines, "notify "); n != 0 {
		t.Fatalf("%d timers fired before the first member stopped; the test needs them pending", n)
	}
	time.Sleep(2 * time.Second)
	b := startMember(ctx, t, notifyFlow(brokers), brokers, 2)
	readUntil("notify ", 37)
	if n := countPrefix(lines, "notify "); n != 37 {
		t.Errorf("%d timer outputs, want one per word (37): %v", n, lines)
	}
	b.end(t)
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestRepartitionRecordsPurged: what a member has consumed and committed
// from its repartition partitions is deleted, so they do not grow forever.
func TestRepartitionRecordsPurged(t *testing.T) {
	defer group.SetPurgeEvery(0)()
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produce(t, brokers, "in", words(0, 1000)...)
	m := startMember(ctx, t, countFlow(brokers), brokers, 2)
	readCounts(t, brokers, 1000, 30*time.Second)
	produce(t, brokers, "in", words(1000, 1010)...) // one more commit purges the first ones
	readCounts(t, brokers, 1010, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := "app.group_count.count.repartition"
	var start int64
	deadline := time.Now().Add(10 * time.Second)
	for start == 0 && time.Now().Before(deadline) {
		so, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		start = 0
		so.Each(func(o kadm.ListedOffset) { start += o.Offset })
		time.Sleep(100 * time.Millisecond)
	}
	if start == 0 {
		t.Errorf("no record of %s was deleted", topic)
	}
	m.end(t)
}

// cutDialer dials normally until Cut; then it closes every connection it
// made and refuses new ones: to the brokers, the member has crashed (its
// session times out, its open transaction is aborted by the broker).
type cutDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (d *cutDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("cut off")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cutDialer) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
	for _, c := range d.conns {
		c.Close()
	}
}

// TestEveryFamilyAcrossACrash: a member is cut off its brokers in the
// middle of the run (a crash, to the group: nothing is committed or
// aborted by it); the others take its partitions over after the session
// timeout, once its open transaction is aborted, and the output equals a
// one-process run's, every line once.
func TestEveryFamilyAcrossACrash(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3, "ref": 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 1600
	produceManual(t, brokers, "in", ints(0, n/2)...)

	stopRef := reference(ctx, t, brokers)

	// The third member gets a dialer that can cut it off; members are
	// started one at a time so that each takes its options in turn.
	cut := &cutDialer{}
	calls := make(chan int, 3)
	var mu sync.Mutex
	started := 0
	defer group.SetClientOpts(func() []kgo.Opt {
		mu.Lock()
		defer mu.Unlock()
		started++
		calls <- started
		if started == 3 {
			return []kgo.Opt{kgo.Dialer(cut.dial)}
		}
		return nil
	})()
	var ms []*member
	for range 3 {
		ms = append(ms, startMember(ctx, t, familiesFlow(brokers, "out"), brokers, 2))
		<-calls
	}
	readLines(t, brokers, "out", n/4, 60*time.Second)
	produceManual(t, brokers, "in", ints(n/2, n)...)
	time.Sleep(300 * time.Millisecond) // the crash comes while the second half is read
	cut.Cut()
	select {
	case err := <-ms[2].done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("the cut member ended with %v, want an error saying its brokers are unreachable", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the cut member did not fail")
	}

	readLines(t, brokers, "ref", n, 60*time.Second)
	stopRef()
	readLines(t, brokers, "out", n, 90*time.Second)
	for _, m := range ms[:2] {
		m.end(t)
	}
	sameAsReference(t, brokers, n, "across a crash")
}
