package group_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts an in-process Kafka-protocol broker with topics.
func cluster(t *testing.T, topics map[string]int32) []string {
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

func produce(t *testing.T, brokers []string, topic string, recs ...*kgo.Record) {
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

func startMember(ctx context.Context, t *testing.T, flow *runnel.Dataflow, brokers []string, workers int) *member {
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

func (m *member) end(t *testing.T) {
	t.Helper()
	close(m.stop)
	select {
	case err := <-m.done:
		var stopped *runnel.InterruptedError
		if !errors.As(err, &stopped) {
			t.Errorf("member stopped with %v, want an InterruptedError", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("member did not stop")
	}
}

// readCounts reads topic out read_committed until want results are there
// (or the deadline), and returns every (word, n) pair.
func readCounts(t *testing.T, brokers []string, want int, within time.Duration) map[string][]int {
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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}
