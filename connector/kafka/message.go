package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Message is one Kafka record: what the source emits and what the sink
// writes. Topic, Partition, Offset and Timestamp say where a read message
// came from. For the sink, an empty Topic means the sink's default topic
// (see Topic), and Partition is honoured when the sink uses
// ManualPartitions; otherwise the key picks the partition (murmur2, like
// the Java client) so keyed output stays in order per key.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

func fromRecord(r *kgo.Record) Message {
	m := Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	if len(r.Headers) > 0 {
		m.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

func toRecord(m *Message, r *kgo.Record, topic string) {
	*r = kgo.Record{Topic: m.Topic, Partition: m.Partition, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp}
	if r.Topic == "" {
		r.Topic = topic
	}
	if len(m.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
}
