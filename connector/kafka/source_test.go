package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

func readWith(t *testing.T, src runnel.Source[kafka.Message], cfg runnel.Config) []kafka.Message {
	t.Helper()
	flow := runnel.NewDataflow("read")
	sink := runneltest.NewSink[kafka.Message]()
	op.Output("out", op.Input("in", flow, src), sink)
	if err := runnel.Run(context.Background(), flow, cfg); err != nil {
		t.Fatal(err)
	}
	return sink.Items()
}

// TestSourceKeepsMetadata: messages keep key, value, headers, topic,
// partition, offset and timestamp.
func TestSourceKeepsMetadata(t *testing.T) {
	brokers := cluster(t, map[string]int32{"t": 1})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts := time.UnixMilli(1_700_000_000_123)
	rec := &kgo.Record{Topic: "t", Key: []byte("k"), Value: []byte("v"), Timestamp: ts, Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("1")}}}
	if err := cl.ProduceSync(context.Background(), rec, &kgo.Record{Topic: "t", Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := readWith(t, kafka.NewSource(brokers, []string{"t"}, kafka.Tail(false)), runneltest.Config(1, time.Hour, ""))
	if len(got) != 2 {
		t.Fatalf("read %d messages, want 2", len(got))
	}
	m := got[0]
	if m.Topic != "t" || m.Partition != 0 || m.Offset != 0 || string(m.Key) != "k" || string(m.Value) != "v" ||
		!m.Timestamp.Equal(ts) || len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != "1" || got[1].Offset != 1 {
		t.Errorf("read %+v", got)
	}
}

// TestSourceStartAt: Latest starts after what is there; AtTime at the
// first record at or after the time.
func TestSourceStartAt(t *testing.T) {
	brokers := cluster(t, map[string]int32{"t": 1})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.UnixMilli(1_700_000_000_000)
	for i := range 10 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte{byte('0' + i)}, Timestamp: base.Add(time.Duration(i) * time.Second)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := runneltest.Config(1, time.Hour, "")
	if got := readWith(t, kafka.NewSource(brokers, []string{"t"}, kafka.Tail(false), kafka.StartAt(kafka.Latest())), cfg); len(got) != 0 {
		t.Errorf("Latest read %d messages, want 0", len(got))
	}
	got := readWith(t, kafka.NewSource(brokers, []string{"t"}, kafka.Tail(false), kafka.StartAt(kafka.AtTime(base.Add(6*time.Second)))), cfg)
	if len(got) != 4 || string(got[0].Value) != "6" {
		t.Errorf("AtTime(+6s) read %d messages starting %q, want 4 from \"6\"", len(got), got[0].Value)
	}
}

// TestSourceMissingTopic: a topic that does not exist stops the run before
// it starts, naming the topic and the brokers.
func TestSourceMissingTopic(t *testing.T) {
	brokers := cluster(t, map[string]int32{"t": 1})
	flow := runnel.NewDataflow("read")
	op.Output("out", op.Input("in", flow, kafka.NewSource(brokers, []string{"nope"}, kafka.Tail(false))), runneltest.NewSink[kafka.Message]())
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), `topic "nope" does not exist`) || !strings.Contains(err.Error(), brokers[0]) {
		t.Errorf("err = %v", err)
	}
}

// TestSourceResumesAndPicksUpNewPartitions: a second run with recovery
// reads only what was added since, including a partition added to the
// topic between the runs, and nothing twice.
func TestSourceResumesAndPicksUpNewPartitions(t *testing.T) {
	brokers := cluster(t, map[string]int32{"t": 2})
	produce(t, brokers, "t", 100, 10)
	cfg := runneltest.Config(2, 5*time.Millisecond, initDir(t))
	if got := readWith(t, kafka.NewSource(brokers, []string{"t"}, kafka.Tail(false)), cfg); len(got) != 100 {
		t.Fatalf("first run read %d, want 100", len(got))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreatePartitions(context.Background(), 1, "t"); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "t", 60, 30) // 30 keys: some land in the new partition
	got := readWith(t, kafka.NewSource(brokers, []string{"t"}, kafka.Tail(false)), cfg)
	parts := map[int32]int{}
	for _, m := range got {
		parts[m.Partition]++
	}
	if len(got) != 60 || parts[2] == 0 {
		t.Errorf("second run read %d messages by partition %v, want the 60 new ones, some from the new partition 2", len(got), parts)
	}
}
