// Command kafkagroup is a flow made to run as several processes in group
// mode: every process runs this same program with --group APP --brokers
// H:P, joins the Kafka consumer group APP, and Kafka decides which process
// reads which partitions; kill one, add one or remove one and the results
// stay exactly-once.
//
// Every message of the input topic (default "words", 4 partitions) is one
// occurrence of a word: its key is the word, its value an id unique to the
// occurrence, and its Kafka timestamp the time the word was seen. The flow
// computes, per word:
//
//   - a running count, written to the topic "counts": one record per input
//     message, key the word, value {"id": "<the message's id>", "n": <how
//     often the word was seen up to and including this message>};
//   - a count per tumbling event-time window (10 minutes by default,
//     aligned to the Unix epoch), written to the topic "windows" when the
//     window closes: key the word, value {"window": <window id>, "start":
//     <its start>, "count": <messages in it>}. A message that comes after
//     its window closed is written there too, as {"window": ..., "late":
//     true, "id": ...}, never dropped.
//
// Windows close by event time: a word's window closes once the word's
// clock is --wait (1 hour by default) past the window's end, the word's
// clock being the time of its newest message plus the system time that
// has passed since that message came (so windows close even when the
// word gets no more messages).
//
// Run three processes against the development broker (each in its own
// terminal, or with &), with 10-second windows that wait 5 seconds so
// that results come while you watch:
//
//	$ go run ./cmd/runnel kafka serve --topic words:4 --topic counts:4 --topic windows:4
//	$ go build -o /tmp/kafkagroup ./examples/kafkagroup
//	$ /tmp/kafkagroup --window 10s --wait 5s --group wordcount --brokers 127.0.0.1:9092 -s 1s --log-level info    # three times
//	$ seq 30 | awk '{print "w" $1%5 ":" $1}' | kcat -b 127.0.0.1:9092 -P -t words -K: -X partitioner=murmur2_random
//	$ kcat -b 127.0.0.1:9092 -C -t counts -o beginning -X isolation.level=read_committed -f '%k %s\n'
//	w3 {"id":"3","n":1}
//	w3 {"id":"8","n":2}
//	...
//	$ kcat -b 127.0.0.1:9092 -C -t windows -o beginning -X isolation.level=read_committed -f '%k %s\n'
//	w3 {"window":179598807,"start":"2026-11-29T21:34:30Z","count":6}
//	...
//
// (kcat stamps each message with the time it sends it: that is its event
// time. -X partitioner=murmur2_random partitions by key as the Java client
// does, so that each word is in one partition and its running count
// follows the input's order; kcat's default partitioner differs.)
//
// With --log-level info each process logs the partitions it is assigned
// and how long restoring their state took. Stop a process with Ctrl-C (it
// commits its epoch and leaves the group) or kill it (the others take its
// partitions over after the session timeout, --group-session-timeout,
// 10s by default); start another with the same command to scale out. The
// first process creates the application's internal topics
// (wordcount.meta, and a repartition and a changelog topic per keyed
// step).
//
// Without --group it runs as one process, reading every partition itself
// (add -r DIR for exactly-once across restarts, see docs/recovery.md).
//
// Flags of its own (before Runnel's): --in TOPIC (default words), --counts
// TOPIC (default counts), --windows TOPIC (default windows), --window D
// (window length, default 10m), --wait D (how long to wait for late
// messages in event time, default 1h).
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/window"
)

func main() {
	own, rest, err := parseOwnFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkagroup: %v\n", err)
		os.Exit(2)
	}
	// The source and sink need the brokers when the flow is built; Runnel
	// parses the same flags again in MainFunc and reports any error.
	cfg, _, cfgErr := runnel.ParseConfig("kafkagroup", rest)
	os.Args = append(os.Args[:1], rest...)
	runnel.MainFunc(func(args []string) (*runnel.Dataflow, error) {
		if len(args) > 0 {
			return nil, fmt.Errorf("unexpected arguments %q", args)
		}
		if cfgErr == nil && len(cfg.Brokers) == 0 {
			return nil, fmt.Errorf("--brokers H:P is needed (and --group APP to run as one of several processes)")
		}
		return Flow(cfg.Brokers, own), nil
	}, runnel.WithUsage("", "Running count and windowed count of words from Kafka to Kafka, exactly-once; run N copies with --group APP --brokers H:P."),
		runnel.WithExample("a member of the group wordcount (start as many as you like)",
			"kafkagroup --group wordcount --brokers 127.0.0.1:9092 -s 1s"))
}

// Options are the program's own flags.
type Options struct {
	In, Counts, Windows string
	// Window is the length of the tumbling windows; Wait is how long in
	// event time a word's windows wait for late messages.
	Window, Wait time.Duration
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{In: "words", Counts: "counts", Windows: "windows", Window: 10 * time.Minute, Wait: time.Hour}
}

// parseOwnFlags takes this program's flags out of args and leaves Runnel's.
func parseOwnFlags(args []string) (Options, []string, error) {
	o := DefaultOptions()
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || !slices.Contains([]string{"in", "counts", "windows", "window", "wait"}, name) {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return o, nil, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if value == "" {
			return o, nil, fmt.Errorf("--%s is empty", name)
		}
		switch name {
		case "in":
			o.In = value
		case "counts":
			o.Counts = value
		case "windows":
			o.Windows = value
		case "window", "wait":
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return o, nil, fmt.Errorf("--%s: %q is not a positive duration", name, value)
			}
			if name == "window" {
				o.Window = d
			} else {
				o.Wait = d
			}
		}
	}
	return o, rest, nil
}

// Count is one running-count result: the id of the input message and how
// often its word was seen up to and including it.
type Count struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

// WindowCount is a word's count in one window, or (Late) one message that
// came after its window had closed.
type WindowCount struct {
	Window int64     `json:"window"`
	Start  time.Time `json:"start"`
	Count  int       `json:"count,omitempty"`
	Late   bool      `json:"late,omitempty"`
	ID     string    `json:"id,omitempty"`
}

// Flow is the dataflow: words from o.In, running counts to o.Counts and
// window counts to o.Windows, both exactly-once.
func Flow(brokers []string, o Options) *runnel.Dataflow {
	flow := runnel.NewDataflow("kafkagroup")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{o.In}))
	words := kafka.MustDecode("decode", msgs, kafka.String(), kafka.String())

	keyed := op.KeyOn("key", words, func(r kafka.Record[string, string]) string { return r.Key })
	counts := op.StatefulMap("count", keyed, func(n int, _ bool, r kafka.Record[string, string]) (int, bool, Count) {
		return n + 1, true, Count{ID: r.Value, N: n + 1}
	})
	op.Output("counts_out", kafka.Encode("encode_counts", counts, o.Counts, kafka.String(), kafka.JSON[Count]()),
		kafka.NewSink(brokers, kafka.ExactlyOnce()))

	align := time.Unix(0, 0).UTC()
	start := func(id int64) time.Time { return align.Add(time.Duration(id) * o.Window) }
	clock := window.EventClock(func(r kafka.Record[string, string]) time.Time { return r.Msg.Timestamp }, o.Wait)
	win := window.CountWindow("window", words, clock, window.Tumbling(o.Window, align),
		func(r kafka.Record[string, string]) string { return r.Key })
	closed := op.Map("closed", win.Down, func(kv runnel.KV[string, window.Result[int]]) runnel.KV[string, WindowCount] {
		return runnel.KV[string, WindowCount]{Key: kv.Key, Value: WindowCount{Window: kv.Value.ID, Start: start(kv.Value.ID), Count: kv.Value.Value}}
	})
	late := op.Map("late", win.Late, func(kv runnel.KV[string, window.Late[kafka.Record[string, string]]]) runnel.KV[string, WindowCount] {
		return runnel.KV[string, WindowCount]{Key: kv.Key, Value: WindowCount{Window: kv.Value.ID, Start: start(kv.Value.ID), Late: true, ID: kv.Value.Value.Value}}
	})
	op.Output("windows_out", kafka.Encode("encode_windows", op.Merge("results", closed, late), o.Windows, kafka.String(), kafka.JSON[WindowCount]()),
		kafka.NewSink(brokers, kafka.ExactlyOnce()))
	return flow
}
