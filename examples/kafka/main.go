// Command kafka is a keyed running count from one Kafka topic to another,
// exactly-once: every message of the input topic is a word, and for each
// word the flow writes ('word', n) to the output topic, n being how often
// the word was seen so far, in one Kafka transaction per epoch.
//
// With no flag it needs nothing installed: it starts an embedded
// Kafka-protocol broker (franz-go's kfake) on 127.0.0.1, writes demo words
// to the topic "words", runs the flow to the end of that input and prints
// the last count of each word, read back read_committed from "counts":
//
//	$ go run ./examples/kafka
//	embedded broker on 127.0.0.1:40731: wrote 25 words to "words"
//	('a', 2)
//	('be', 2)
//	...
//
// Against a real broker it reads and writes the given topics until it is
// stopped (Ctrl-C commits the last epoch), resuming where it left off when
// run with a recovery directory:
//
//	$ go run ./cmd/runnel kafka serve --topic words:4 --topic counts:3 &
//	$ go run ./cmd/runnel recovery init /tmp/kafka-rec 2
//	$ go run ./examples/kafka --brokers 127.0.0.1:9092 -r /tmp/kafka-rec -w 2
//
// The brokers are Runnel's own --brokers host:port[,host:port] (or
// RUNNEL_BROKERS), the flag that group mode uses too, so the same command
// with --group APP and without -r runs the flow as one member of a group
// (docs/scaling.md). Flags of its own: --in TOPIC (default words), --out
// TOPIC (default counts), --tail=false to stop at the end offsets seen at
// start, --timeout D (default 30s) for how long the brokers may be
// unreachable.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/connector/kafka/kafkadev"
	"github.com/runnel-dev/runnel/op"
)

const demoText = "to be or not to be that is the question whether tis nobler in the mind to suffer or to take arms a sea a"

func main() {
	own, rest, err := parseOwnFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafka: %v\n", err)
		os.Exit(2)
	}
	os.Args = append(os.Args[:1], rest...)
	// Runnel's flags decide between the demo and a real run: with
	// --brokers the flow runs against them under runnel.MainFunc, which
	// parses the same flags again (and reports any error in them).
	cfg, _, err := runnel.ParseConfig("kafka", rest)
	if err == nil && len(cfg.Brokers) == 0 {
		os.Exit(demo(own, rest, os.Stdout, os.Stderr))
	}
	runnel.MainFunc(func(args []string) (*runnel.Dataflow, error) {
		if len(args) > 0 {
			return nil, fmt.Errorf("unexpected arguments %q", args)
		}
		return countFlow(cfg.Brokers, own), nil
	})
}

type ownFlags struct {
	in, out string
	tail    bool
	timeout time.Duration
}

// parseOwnFlags takes this program's flags out of args and leaves Runnel's.
func parseOwnFlags(args []string) (ownFlags, []string, error) {
	f := ownFlags{in: "words", out: "counts", tail: true, timeout: 30 * time.Second}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || !slices.Contains([]string{"in", "out", "tail", "timeout"}, name) {
			rest = append(rest, a)
			continue
		}
		if name == "tail" {
			v := true
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return f, nil, fmt.Errorf("--tail: %q is not a boolean", value)
				}
				v = b
			}
			f.tail = v
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return f, nil, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if value == "" {
			return f, nil, fmt.Errorf("--%s is empty", name)
		}
		switch name {
		case "in":
			f.in = value
		case "out":
			f.out = value
		case "timeout":
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return f, nil, fmt.Errorf("--timeout: %q is not a positive duration", value)
			}
			f.timeout = d
		}
	}
	return f, rest, nil
}

// countFlow is the flow: words from topic in, ('word', n) to topic out,
// exactly-once.
func countFlow(brokers []string, f ownFlags) *runnel.Dataflow {
	flow := runnel.NewDataflow("kafka_count")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{f.in}, kafka.Tail(f.tail), kafka.BrokerTimeout(f.timeout)))
	words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())
	keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Value })
	counts := op.StatefulMap("count", keyed, func(n int, _ bool, _ kafka.Record[string, string]) (int, bool, int) {
		return n + 1, true, n + 1
	})
	encoded := kafka.Encode("encode", counts, f.out, kafka.String(), kafka.JSON[int]())
	op.Output("out", encoded, kafka.NewSink(brokers, kafka.ExactlyOnce(), kafka.TransactionTimeout(time.Minute), kafka.SinkTimeout(f.timeout)))
	return flow
}

// demo runs the flow against an embedded broker and prints the result.
func demo(own ownFlags, runnelArgs []string, stdout, stderr io.Writer) int {
	cfg, args, err := runnel.ParseConfig("kafka", runnelArgs)
	if err == nil && len(args) > 0 {
		err = fmt.Errorf("unexpected arguments %q", args)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kafka: %v\n", err)
		return 2
	}
	b, err := kafkadev.Start(kafkadev.Options{Topics: map[string]int32{own.in: 4, own.out: 3}})
	if err != nil {
		fmt.Fprintf(stderr, "kafka: %v\n", err)
		return 1
	}
	defer b.Close()
	words := strings.Fields(demoText)
	recs := make([]kafkadev.Record, len(words))
	for i, w := range words {
		recs[i] = kafkadev.Record{Key: []byte(w), Value: []byte(w)}
	}
	if err := b.Produce(own.in, recs...); err != nil {
		fmt.Fprintf(stderr, "kafka: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "embedded broker on %s: wrote %d words to %q\n", strings.Join(b.Addrs(), ","), len(words), own.in)
	// Runnel's flags (-w, -r, -s, ...) still apply; the input ends at the
	// end offsets seen at start, so the run ends.
	if err := runnel.Run(context.Background(), countFlow(b.Addrs(), ownFlags{in: own.in, out: own.out, timeout: own.timeout}), cfg); err != nil {
		fmt.Fprintf(stderr, "kafka: %v\n", err)
		return 1
	}
	last, err := lastCounts(b.Addrs(), own.out)
	if err != nil {
		fmt.Fprintf(stderr, "kafka: %v\n", err)
		return 1
	}
	for _, w := range slices.Sorted(mapKeys(last)) {
		fmt.Fprintln(stdout, runnel.KV[string, int]{Key: w, Value: last[w]})
	}
	return 0
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// lastCounts reads the output topic read_committed with Runnel's own
// source and keeps each word's highest count.
func lastCounts(brokers []string, topic string) (map[string]int, error) {
	flow := runnel.NewDataflow("read_counts")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{topic}, kafka.Tail(false)))
	recs := kafka.MustDecode("decode", msgs, kafka.String(), kafka.JSON[int]())
	last := map[string]int{}
	op.Output("out", recs, runnel.DynamicOutput[kafka.Record[string, int]](collect{last}))
	if err := runnel.Run(context.Background(), flow, runnel.DefaultConfig()); err != nil {
		return nil, err
	}
	return last, nil
}

// collect keeps the highest count per word (one worker: DefaultConfig).
type collect struct{ last map[string]int }

func (c collect) Build(runnel.BuildContext) (runnel.SinkPartition[kafka.Record[string, int]], error) {
	return c, nil
}
func (c collect) WriteBatch(rs []kafka.Record[string, int]) error {
	for _, r := range rs {
		c.last[r.Key] = max(c.last[r.Key], r.Value)
	}
	return nil
}
func (c collect) Close() error { return nil }
