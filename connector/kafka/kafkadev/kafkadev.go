// Package kafkadev runs an embedded Kafka-protocol broker (franz-go's
// kfake) on 127.0.0.1, for trying flows without installing Kafka: the
// examples and `runnel kafka serve` use it. It implements the wire protocol
// including transactions and read_committed, in memory (or in a data
// directory), with no replication. It is for development and tests, not for
// production data.
package kafkadev

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a running development broker.
type Broker struct {
	c *kfake.Cluster
}

// Options configure Start.
type Options struct {
	// Addr is host:port to listen on; the host must be 127.0.0.1 (or
	// empty) and port 0 picks a free port. Default "127.0.0.1:0".
	Addr string
	// Topics to create: name → partitions.
	Topics map[string]int32
	// DataDir keeps the broker's data (records, transactions) in a
	// directory, so a broker started again on it continues; empty keeps
	// everything in memory.
	DataDir string
	// GroupMinSessionTimeout is the shortest session timeout a consumer
	// group member may ask for (Kafka's group.min.session.timeout.ms);
	// zero keeps Kafka's default, 6s. Tests of group mode lower it to run
	// with sessions of about a second.
	GroupMinSessionTimeout time.Duration
}

// Start starts a broker.
func Start(o Options) (*Broker, error) {
	port := 0
	if o.Addr != "" {
		host, p, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return nil, fmt.Errorf("kafkadev: address %q: %w", o.Addr, err)
		}
		if host != "" && host != "127.0.0.1" && host != "localhost" {
			return nil, fmt.Errorf("kafkadev: address %q: the development broker listens on 127.0.0.1 only", o.Addr)
		}
		if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("kafkadev: address %q: bad port", o.Addr)
		}
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port)}
	if o.GroupMinSessionTimeout < 0 {
		return nil, fmt.Errorf("kafkadev: group min session timeout %v is negative", o.GroupMinSessionTimeout)
	}
	if o.GroupMinSessionTimeout > 0 {
		opts = append(opts, kfake.GroupMinSessionTimeout(o.GroupMinSessionTimeout))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkadev: start broker on %s: %w", o.Addr, err)
	}
	b := &Broker{c: c}
	for name, n := range o.Topics {
		if err := b.CreateTopic(name, n); err != nil {
			c.Close()
			return nil, err
		}
	}
	return b, nil
}

// Addrs are the broker's host:port addresses, for kafka.NewSource/NewSink.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// CreateTopic creates a topic with n partitions; a topic that exists with
// as many partitions is left alone.
func (b *Broker) CreateTopic(name string, n int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if td, err := adm.ListTopics(ctx, name); err == nil {
		if d, ok := td[name]; ok && d.Err == nil {
			if int32(len(d.Partitions)) != n {
				return fmt.Errorf("kafkadev: topic %q exists with %d partitions, not %d", name, len(d.Partitions), n)
			}
			return nil
		}
	}
	resp, err := adm.CreateTopic(ctx, n, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("kafkadev: create topic %q: %w", name, err)
	}
	return nil
}

// Close stops the broker.
func (b *Broker) Close() { b.c.Close() }

// ParseTopic parses "name:partitions" (partitions default 1).
func ParseTopic(s string) (string, int32, error) {
	name, p, found := strings.Cut(s, ":")
	if name == "" {
		return "", 0, fmt.Errorf("topic %q: empty name", s)
	}
	if !found {
		return name, 1, nil
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("topic %q: partitions must be a positive integer", s)
	}
	return name, int32(n), nil
}

// Record is a key and value to write with Produce.
type Record struct{ Key, Value []byte }

// Produce writes records to topic and waits until the broker has them
// (partitioned by key, as the Java client does).
func (b *Broker) Produce(topic string, records ...Record) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(records))
	for i, r := range records {
		recs[i] = &kgo.Record{Key: r.Key, Value: r.Value}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		return fmt.Errorf("kafkadev: produce to %q: %w", topic, err)
	}
	return nil
}
