package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/internal/proctest"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/recovery"
	"github.com/runnel-dev/runnel/runneltest"
)

func TestMain(m *testing.M) { proctest.Main(m, &binaries) }

// cluster starts an in-process kfake broker with the given topics
// (name → partitions).
func cluster(t *testing.T, topics map[string]int32) []string {
	t.Helper()
	var opts []kfake.Opt
	opts = append(opts, kfake.NumBrokers(1))
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

// produce writes n records "k<i mod keys>" → "<i>" to topic, spread over
// its partitions by key.
func produce(t *testing.T, brokers []string, topic string, n, keys int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range n {
		recs[i] = &kgo.Record{Key: []byte("k" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads everything committed in topic (read_committed), up to the
// end offsets seen now.
func readAll(t *testing.T, brokers []string, topic string) []kgo.Record {
	t.Helper()
	src := kafka.NewSource(brokers, []string{topic}, kafka.Tail(false))
	flow := runnel.NewDataflow("read")
	var out []kgo.Record
	got := runneltest.NewSink[kafka.Message]()
	op.Output("out", op.Input("in", flow, src), got)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	for _, m := range got.Items() {
		out = append(out, kgo.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value})
	}
	return out
}

// countFlow counts messages per key and writes "key count" to topic out.
// failAfter > 0 makes the flow fail after that many messages (a crash).
func countFlow(brokers []string, failAfter int, sinkOpts ...kafka.SinkOpt) *runnel.Dataflow {
	flow := runnel.NewDataflow("kcount")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}, kafka.Tail(false), kafka.MaxBatch(50)))
	var seen atomic.Int64
	msgs = op.TryMap("crash", msgs, func(m kafka.Message) (kafka.Message, error) {
		s := seen.Add(1)
		if failAfter > 0 && s > int64(failAfter) {
			return m, errCrash
		}
		if failAfter > 0 && s%20 == 0 {
			time.Sleep(time.Millisecond) // several epochs commit before the crash
		}
		return m, nil
	})
	keyed := op.KeyOn("key", msgs, func(m kafka.Message) string { return string(m.Key) })
	counts := op.StatefulMap("count", keyed, func(c int, _ bool, _ kafka.Message) (int, bool, int) { return c + 1, true, c + 1 })
	out := op.Map("fmt", counts, func(kv runnel.KV[string, int]) kafka.Message {
		return kafka.Message{Key: []byte(kv.Key), Value: []byte(strconv.Itoa(kv.Value))}
	})
	op.Output("out", out, kafka.NewSink(brokers, append([]kafka.SinkOpt{kafka.Topic("out")}, sinkOpts...)...))
	return flow
}

var errCrash = errors.New("simulated crash")

func initDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir() + "/db"
	if err := recovery.Init(dir, 2); err != nil {
		t.Fatal(err)
	}
	return dir
}

// outputByKey groups output values by key in offset order.
func outputByKey(recs []kgo.Record) map[string][]string {
	m := map[string][]string{}
	for _, r := range recs {
		m[string(r.Key)] = append(m[string(r.Key)], string(r.Value))
	}
	return m
}

// checkCounts says what is wrong with the counts per key: each key's values
// must be exactly 1..n (no duplicate, no gap), n = its share of total.
func checkCounts(recs []kgo.Record, total, keys int) error {
	by := outputByKey(recs)
	if len(by) != keys {
		return fmt.Errorf("%d keys in the output, want %d", len(by), keys)
	}
	for k, vs := range by {
		i, _ := strconv.Atoi(strings.TrimPrefix(k, "k"))
		want := total / keys
		if i < total%keys {
			want++
		}
		if len(vs) != want {
			return fmt.Errorf("key %s: %d outputs, want %d (first %v)", k, len(vs), want, vs[:min(len(vs), 5)])
		}
		for j, v := range vs {
			if v != strconv.Itoa(j+1) {
				return fmt.Errorf("key %s: output %d is %s, want %d", k, j, v, j+1)
			}
		}
	}
	return nil
}

func TestExactlyOnceInProcessCrash(t *testing.T) {
	const n, keys = 2000, 7
	brokers := cluster(t, map[string]int32{"in": 4, "out": 3})
	produce(t, brokers, "in", n, keys)
	dir := initDir(t)
	cfg := runneltest.Config(1, 5*time.Millisecond, dir)
	err := runnel.Run(context.Background(), countFlow(brokers, n/2, kafka.ExactlyOnce()), cfg)
	if !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	// The crash comes at item n/2+1: every earlier output may be committed
	// if an epoch ended just before it, none of it if no epoch ended.
	if got := len(readAll(t, brokers, "out")); got == 0 || got > n/2 {
		t.Fatalf("after the crash %d outputs are visible, want some committed epochs (0 < n <= %d)", got, n/2)
	}
	cfg.WorkersPerProcess = 2
	if err := runnel.Run(context.Background(), countFlow(brokers, 0, kafka.ExactlyOnce()), cfg); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if err := checkCounts(readAll(t, brokers, "out"), n, keys); err != nil {
		t.Error(err)
	}
}

// TestZombieFenced: a producer left over from an earlier run (a zombie)
// holds an open transaction on the sink's transactional id. Starting the
// flow fences it: the zombie's late commit fails with PRODUCER_FENCED and
// its record never becomes visible to read_committed readers.
func TestZombieFenced(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 2, "out": 3})
	produce(t, brokers, "in", 300, 5)
	zombie, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("runnel.kcount.out.0.0"), kgo.DefaultProduceTopic("out"))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	ctx := context.Background()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Key: []byte("zombie"), Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := runnel.Run(ctx, countFlow(brokers, 0, kafka.ExactlyOnce()), runneltest.Config(1, 5*time.Millisecond, initDir(t))); err != nil {
		t.Fatal(err)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil || !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("the zombie's commit: %v, want PRODUCER_FENCED", err)
	}
	recs := readAll(t, brokers, "out")
	if by := outputByKey(recs); len(by["zombie"]) > 0 {
		t.Errorf("the zombie's record is visible: %v", by["zombie"])
	}
	if err := checkCounts(recs, 300, 5); err != nil {
		t.Error(err)
	}
}

// TestTransactionTimeoutChecked: a snapshot interval over a quarter of the
// transaction timeout is refused before anything runs.
func TestTransactionTimeoutChecked(t *testing.T) {
	brokers := cluster(t, map[string]int32{"in": 1, "out": 1})
	cfg := runneltest.Config(1, 20*time.Second, initDir(t))
	err := runnel.Run(context.Background(), countFlow(brokers, 0, kafka.ExactlyOnce(), kafka.TransactionTimeout(time.Minute)), cfg)
	if err == nil || !strings.Contains(err.Error(), "kcount.out") || !strings.Contains(err.Error(), "transaction timeout") {
		t.Errorf("err = %v, want a refusal naming the step and the transaction timeout", err)
	}
}

// TestExactlyOnceGracefulStop: a tailing flow stopped gracefully commits
// its last epoch (nothing left open), and the next run continues exactly.
func TestExactlyOnceGracefulStop(t *testing.T) {
	const n, keys = 1500, 4
	brokers := cluster(t, map[string]int32{"in": 2, "out": 2})
	produce(t, brokers, "in", n, keys)
	dir := initDir(t)
	flow := runnel.NewDataflow("kcount")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}, kafka.MaxBatch(20))) // tail
	keyed := op.KeyOn("key", msgs, func(m kafka.Message) string { return string(m.Key) })
	counts := op.StatefulMap("count", keyed, func(c int, _ bool, _ kafka.Message) (int, bool, int) { return c + 1, true, c + 1 })
	var seen atomic.Int64
	stop := make(chan struct{})
	out := op.Map("fmt", counts, func(kv runnel.KV[string, int]) kafka.Message {
		if seen.Add(1) == n/2 {
			close(stop)
		}
		return kafka.Message{Key: []byte(kv.Key), Value: []byte(strconv.Itoa(kv.Value))}
	})
	op.Output("out", out, kafka.NewSink(brokers, kafka.Topic("out"), kafka.ExactlyOnce()))
	err := runnel.Run(context.Background(), flow, runneltest.Config(2, 5*time.Millisecond, dir), runnel.WithStop(stop))
	if !errors.Is(err, runnel.ErrInterrupted) {
		t.Fatalf("stopped run: %v", err)
	}
	if got := len(readAll(t, brokers, "out")); got < n/2 || got >= n {
		t.Fatalf("after the stop %d outputs are committed, want at least %d (everything up to the stop)", got, n/2)
	}
	if err := runnel.Run(context.Background(), countFlow(brokers, 0, kafka.ExactlyOnce()), runneltest.Config(1, 5*time.Millisecond, dir)); err != nil {
		t.Fatal(err)
	}
	if err := checkCounts(readAll(t, brokers, "out"), n, keys); err != nil {
		t.Error(err)
	}
}
