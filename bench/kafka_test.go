package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
)

// kafkaRecords is the input size of BenchmarkKafka (RUNNEL_BENCH_KAFKA
// overrides it).
func kafkaRecords(b *testing.B) int {
	if s := os.Getenv("RUNNEL_BENCH_KAFKA"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("RUNNEL_BENCH_KAFKA=%q", s)
		}
		return n
	}
	return 200_000
}

// BenchmarkKafka reads a 4-partition topic of 100-byte records from an
// in-process kfake broker, upper-cases each value and writes it to another
// topic: hand (a plain franz-go loop: one client consuming all partitions,
// producing asynchronously, one flush at the end), hand-txn (the same loop
// committing a transaction every second), and Runnel flows (kafka.NewSource
// → op.Map → kafka.NewSink) at-least-once on 1 and 2 workers, and
// ExactlyOnce with recovery at 1s epochs. Metrics: records/s and, for the
// flows, x-hand (at-least-once flows against hand) or x-hand-txn
// (exactly-once against hand-txn), from the same run; targets ≥ 0.60
// at-least-once and ≥ 0.40 exactly-once. Each run checks the output count.
func BenchmarkKafka(b *testing.B) {
	n := kafkaRecords(b)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "in"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	fillTopic(b, brokers, "in", n)

	rates := map[string]float64{}
	round := 0
	for _, tc := range []struct {
		name, base string
		run        func(out string) error
	}{
		{"hand", "", func(out string) error { return handKafka(brokers, out, n, false) }},
		{"hand-txn", "", func(out string) error { return handKafka(brokers, out, n, true) }},
		{"w1", "hand", func(out string) error { return runnelKafka(brokers, out, runnelConfig(1, ""), false) }},
		{"w2", "hand", func(out string) error { return runnelKafka(brokers, out, runnelConfig(2, ""), false) }},
		{"w1-eos-1s", "hand-txn", func(out string) error {
			return runnelKafka(brokers, out, recoveryConfig(initRecovery(b), time.Second), true)
		}},
		{"w2-eos-1s", "hand-txn", func(out string) error {
			cfg := recoveryConfig(initRecovery(b), time.Second)
			cfg.WorkersPerProcess = 2
			return runnelKafka(brokers, out, cfg, true)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var spent time.Duration
			for range b.N {
				round++
				out := fmt.Sprint("out-", round)
				createTopic(b, brokers, out, 4)
				start := time.Now()
				if err := tc.run(out); err != nil {
					b.Fatal(err)
				}
				spent += time.Since(start)
				b.StopTimer()
				if got := countCommitted(b, brokers, out); got != n {
					b.Fatalf("%s wrote %d records, want %d", out, got, n)
				}
				b.StartTimer()
			}
			rate := float64(n) * float64(b.N) / spent.Seconds()
			rates[tc.name] = rate
			b.ReportMetric(rate, "records/s")
			if base := rates[tc.base]; base > 0 {
				b.ReportMetric(rate/base, "x-"+tc.base)
			}
		})
	}
}

func runnelConfig(workers int, dir string) runnel.Config {
	cfg := runnel.DefaultConfig()
	cfg.WorkersPerProcess = workers
	cfg.SnapshotInterval = time.Second
	cfg.RecoveryDir = dir
	return cfg
}

func fillTopic(b testing.TB, brokers []string, topic string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := bytes.Repeat([]byte("abcdefghij"), 10)
	ctx := context.Background()
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 1000)), Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

func createTopic(b testing.TB, brokers []string, topic string, partitions int32) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		b.Fatal(err)
	}
}

func upper(v []byte) []byte { return bytes.ToUpper(v) }

// handKafka is the baseline: one client reads every partition of "in"
// from the start until n records, upper-cases and produces each one; with
// txn, in a transaction committed every second.
func handKafka(brokers []string, out string, n int, txn bool) error {
	ctx := context.Background()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DefaultProduceTopic(out), kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	if txn {
		opts = append(opts, kgo.TransactionalID("hand-"+out))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var produceErr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil && produceErr == nil {
			produceErr = err
		}
	}
	commitAt := time.Now().Add(time.Second)
	if txn {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
	}
	for seen := 0; seen < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: upper(r.Value)}, promise)
		})
		if txn && time.Now().After(commitAt) {
			if err := cl.Flush(ctx); err != nil {
				return err
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				return err
			}
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
			commitAt = time.Now().Add(time.Second)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if txn {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return err
		}
	}
	return produceErr
}

func runnelKafka(brokers []string, out string, cfg runnel.Config, eos bool) error {
	flow := runnel.NewDataflow("kbench")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"in"}, kafka.Tail(false)))
	mapped := op.Map("upper", msgs, func(m kafka.Message) kafka.Message {
		return kafka.Message{Key: m.Key, Value: upper(m.Value)}
	})
	opts := []kafka.SinkOpt{kafka.Topic(out)}
	if eos {
		opts = append(opts, kafka.ExactlyOnce())
	}
	op.Output("out", mapped, kafka.NewSink(brokers, opts...))
	return runnel.Run(context.Background(), flow, cfg)
}

// countCommitted counts the records of a topic a read_committed reader
// sees, with Runnel's own source.
func countCommitted(b *testing.B, brokers []string, topic string) int {
	flow := runnel.NewDataflow("kcount")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{topic}, kafka.Tail(false)))
	counter := &countSink{}
	op.Output("out", msgs, runnel.DynamicOutput[kafka.Message](counter))
	if err := runnel.Run(context.Background(), flow, runnel.DefaultConfig()); err != nil {
		b.Fatal(err)
	}
	return counter.n
}

type countSink struct{ n int }

func (c *countSink) Build(runnel.BuildContext) (runnel.SinkPartition[kafka.Message], error) {
	return c, nil
}
func (c *countSink) WriteBatch(ms []kafka.Message) error { c.n += len(ms); return nil }
func (c *countSink) Close() error                        { return nil }
