package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka/internal/group"
)

// StartOffset says where a partition with no stored position starts.
type StartOffset struct {
	kind int // 0 earliest, 1 latest, 2 time
	at   time.Time
}

// Earliest starts at the oldest record still in the partition.
func Earliest() StartOffset { return StartOffset{} }

// Latest starts after the last record in the partition when the run starts.
func Latest() StartOffset { return StartOffset{kind: 1} }

// AtTime starts at the first record whose timestamp is at or after t.
func AtTime(t time.Time) StartOffset { return StartOffset{kind: 2, at: t} }

// String names the start position: "earliest", "latest" or "time T".
func (s StartOffset) String() string {
	switch s.kind {
	case 1:
		return "latest"
	case 2:
		return "time " + s.at.Format(time.RFC3339Nano)
	}
	return "earliest"
}

// SourceOpt configures NewSource.
type SourceOpt func(*sourceConfig)

type sourceConfig struct {
	tail          bool
	start         StartOffset
	uncommitted   bool
	batch         int
	readAhead     int
	brokerTimeout time.Duration
	clientOpts    []kgo.Opt
}

// Tail says whether the source keeps waiting for new records (true, the
// default, like Bytewax's KafkaSource) or ends each partition at the end
// offset it saw when the run started (false: the run ends once everything
// that was there has been processed).
func Tail(on bool) SourceOpt { return func(c *sourceConfig) { c.tail = on } }

// StartAt says where partitions without a stored position start (default
// Earliest). A resumed run continues every partition from its snapshotted
// next offset instead; a partition added to the topic since the last run
// has no position and starts here too, so keep the default Earliest if
// partitions may be added and nothing may be skipped.
func StartAt(s StartOffset) SourceOpt { return func(c *sourceConfig) { c.start = s } }

// ReadUncommitted reads records of open and aborted transactions too. The
// default is read_committed, which exactly-once pipelines need.
func ReadUncommitted() SourceOpt { return func(c *sourceConfig) { c.uncommitted = true } }

// MaxBatch caps the records handed to the flow per batch (default 1024).
func MaxBatch(n int) SourceOpt { return func(c *sourceConfig) { c.batch = n } }

// ReadAhead is how many batches each partition fetches ahead of the flow
// (default 4). Together with franz-go's own fetch buffer (FetchMaxBytes)
// it bounds the memory a partition holds.
func ReadAhead(n int) SourceOpt { return func(c *sourceConfig) { c.readAhead = n } }

// BrokerTimeout is how long every connection attempt to the brokers may
// fail before the run stops with an error naming the broker (default 30s).
func BrokerTimeout(d time.Duration) SourceOpt { return func(c *sourceConfig) { c.brokerTimeout = d } }

// SourceClientOpts adds franz-go client options (TLS, SASL, fetch sizes).
// Options that decide what is consumed are set by the source.
func SourceClientOpts(opts ...kgo.Opt) SourceOpt {
	return func(c *sourceConfig) { c.clientOpts = append(c.clientOpts, opts...) }
}

// NewSource reads topics from the brokers (host:port). Every Kafka
// topic-partition is one Runnel partition, named "topic/N", read by
// explicit assignment (no consumer group): its position is the next offset
// to read, stored with each snapshot, so a resumed run continues exactly
// where the last committed epoch ended (exactly-once input). Partitions are
// listed when the run starts; partitions added later are read from the
// next run on. Each partition reads ahead in the background, bounded by
// ReadAhead, so a worker never waits for the network.
func NewSource(brokers []string, topics []string, opts ...SourceOpt) runnel.Source[Message] {
	c := sourceConfig{tail: true, batch: 1024, readAhead: 4, brokerTimeout: 30 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	return runnel.PartitionedInput[Message, int64](&source{brokers: brokers, topics: topics, cfg: c})
}

type source struct {
	brokers []string
	topics  []string
	cfg     sourceConfig
}

func (s *source) baseOpts() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(s.brokers...)}, s.cfg.clientOpts...)
}

func (s *source) ListParts(ctx context.Context) ([]string, error) {
	if m := group.FromContext(ctx); m != nil {
		return m.Assigned(s.topics)
	}
	if len(s.brokers) == 0 {
		return nil, errors.New("kafka: no brokers given")
	}
	if len(s.topics) == 0 {
		return nil, errors.New("kafka: no topics given")
	}
	cl, err := kgo.NewClient(s.baseOpts()...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.brokerTimeout)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, s.topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics %q on brokers %s: %w", s.topics, strings.Join(s.brokers, ","), err)
	}
	var parts []string
	for _, t := range s.topics {
		d, ok := td[t]
		if !ok || errors.Is(d.Err, kerrUnknownTopic) || len(d.Partitions) == 0 {
			return nil, fmt.Errorf("kafka: topic %q does not exist on brokers %s", t, strings.Join(s.brokers, ","))
		}
		if d.Err != nil {
			return nil, fmt.Errorf("kafka: topic %q: %w", t, d.Err)
		}
		for _, p := range d.Partitions.Numbers() {
			parts = append(parts, partName(t, p))
		}
	}
	return parts, nil
}

func partName(topic string, p int32) string { return topic + "/" + strconv.Itoa(int(p)) }

func parsePart(name string) (string, int32, error) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", 0, fmt.Errorf("kafka: partition name %q is not topic/N", name)
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("kafka: partition name %q is not topic/N", name)
	}
	return name[:i], int32(n), nil
}

func (s *source) BuildPart(bc runnel.BuildContext, part string, resume *int64) (runnel.StatefulSourcePartition[Message, int64], error) {
	topic, partition, err := parsePart(part)
	if err != nil {
		return nil, err
	}
	if m := group.FromContext(bc.Context); m != nil {
		return &groupPart{topic: topic, partition: partition, q: m.Queue(bc.Worker, topic, partition), max: s.cfg.batch, clock: bc.Clock}, nil
	}
	health := &group.BrokerHealth{}
	opts := append(s.baseOpts(), kgo.WithHooks(health), kgo.KeepControlRecords())
	if !s.cfg.uncommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(buildContext(bc), s.cfg.brokerTimeout)
	defer cancel()
	adm := kadm.NewClient(admin)

	var next int64
	if resume != nil {
		next = *resume
	} else {
		var lo kadm.ListedOffsets
		switch s.cfg.start.kind {
		case 0:
			lo, err = adm.ListStartOffsets(ctx, topic)
		case 1:
			lo, err = s.listEnd(ctx, adm, topic)
		case 2:
			lo, err = adm.ListOffsetsAfterMilli(ctx, s.cfg.start.at.UnixMilli(), topic)
		}
		if next, err = offsetOf(lo, err, topic, partition, s.brokers); err != nil {
			return nil, fmt.Errorf("start at %v: %w", s.cfg.start, err)
		}
	}
	end := int64(-1)
	if !s.cfg.tail {
		lo, err := s.listEnd(ctx, adm, topic)
		if end, err = offsetOf(lo, err, topic, partition, s.brokers); err != nil {
			return nil, fmt.Errorf("end offset: %w", err)
		}
	}
	p := &sourcePart{topic: topic, partition: partition, next: next, end: end, brokers: s.brokers, health: health}
	if end >= 0 && next >= end {
		return p, nil // nothing to read: no client
	}
	opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(next)}}))
	p.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	p.ch = make(chan fetched, s.cfg.readAhead)
	var rctx context.Context
	rctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Go(func() { p.readAhead(rctx, s.cfg.batch, s.cfg.brokerTimeout) })
	return p, nil
}

// listEnd lists the offsets a reader with this source's isolation level
// ends at: the last stable offset for read_committed, else the high-water
// mark.
func (s *source) listEnd(ctx context.Context, adm *kadm.Client, topic string) (kadm.ListedOffsets, error) {
	if s.cfg.uncommitted {
		return adm.ListEndOffsets(ctx, topic)
	}
	return adm.ListCommittedOffsets(ctx, topic)
}

func offsetOf(lo kadm.ListedOffsets, err error, topic string, partition int32, brokers []string) (int64, error) {
	if err != nil {
		return 0, fmt.Errorf("kafka: list offsets of %s on brokers %s: %w", partName(topic, partition), strings.Join(brokers, ","), err)
	}
	o, ok := lo.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("kafka: partition %s does not exist", partName(topic, partition))
	}
	if o.Err != nil {
		return 0, fmt.Errorf("kafka: list offsets of %s: %w", partName(topic, partition), o.Err)
	}
	return o.Offset, nil
}

type fetched struct {
	msgs []Message
	next int64 // offset after the last record fetched, control records included
	err  error
}

type sourcePart struct {
	topic     string
	partition int32
	next      int64 // offset of the next record to hand out
	end       int64 // < 0: tail
	brokers   []string
	health    *group.BrokerHealth

	cl     *kgo.Client
	ch     chan fetched
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   bool
}

// readAhead fetches in the background and hands batches to NextBatch
// through a bounded channel; it stops at the end offset (without tail),
// at an error, or when the partition closes.
func (p *sourcePart) readAhead(ctx context.Context, maxRecs int, brokerTimeout time.Duration) {
	defer close(p.ch)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := p.cl.PollRecords(pctx, maxRecs)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var f fetched
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			f.err = fmt.Errorf("kafka: fetch %s: %w", partName(fe.Topic, fe.Partition), fe.Err)
		}
		if f.err == nil {
			if err := p.health.Check(brokerTimeout, p.brokers); err != nil {
				f.err = err
			}
		}
		if f.err == nil {
			f.next = -1
			fs.EachRecord(func(r *kgo.Record) {
				if p.end >= 0 && r.Offset >= p.end {
					f.next = max(f.next, p.end)
					return
				}
				f.next = r.Offset + 1
				if r.Attrs.IsControl() {
					return
				}
				f.msgs = append(f.msgs, fromRecord(r))
			})
			if f.next < 0 {
				continue
			}
		}
		select {
		case p.ch <- f:
		case <-ctx.Done():
			return
		}
		if f.err != nil || (p.end >= 0 && f.next >= p.end) {
			return
		}
	}
}

func (p *sourcePart) NextBatch() ([]Message, error) {
	if p.done || p.ch == nil {
		return nil, io.EOF
	}
	select {
	case f, ok := <-p.ch:
		if !ok {
			p.done = true
			return nil, io.EOF
		}
		if f.err != nil {
			return nil, fmt.Errorf("%w (resume continues at offset %d)", f.err, p.next)
		}
		p.next = f.next
		if p.end >= 0 && p.next >= p.end {
			p.done = true
		}
		return f.msgs, nil
	default:
		return nil, nil
	}
}

func (p *sourcePart) NextAwake() time.Time { return time.Time{} }

func (p *sourcePart) Snapshot() (int64, error) { return p.next, nil }

func (p *sourcePart) Close() error {
	if p.cl == nil {
		return nil
	}
	p.cancel()
	p.wg.Wait()
	p.cl.Close()
	return nil
}

// groupPart is a partition of a source in group mode: the member polls
// the partition with the group's client and queues its records here.
type groupPart struct {
	topic     string
	partition int32
	q         *group.Queue
	max       int
	recs      []*kgo.Record
	msgs      []Message
	next      int64
	clock     runnel.Clock
}

func (p *groupPart) NextBatch() ([]Message, error) {
	p.recs = p.q.Take(p.recs[:0], p.max)
	p.msgs = p.msgs[:0]
	for _, r := range p.recs {
		p.next = r.Offset + 1
		p.msgs = append(p.msgs, fromRecord(r))
	}
	clear(p.recs)
	return p.msgs, nil
}

// NextAwake is at once while records wait, and otherwise far off: the
// member wakes the worker when it queues records, and Ready makes the
// engine read them then.
func (p *groupPart) NextAwake() time.Time {
	if p.q.Len() > 0 {
		return time.Time{}
	}
	return p.clock.Now().Add(time.Hour)
}

// Ready reports that records wait (engine.ReadyPartition).
func (p *groupPart) Ready() bool { return p.q.Len() > 0 }

// Snapshot is the offset after the last record read. In group mode the
// member commits the group's offsets itself; this is for the API's view.
func (p *groupPart) Snapshot() (int64, error) { return p.next, nil }

func (p *groupPart) Close() error { return nil }
