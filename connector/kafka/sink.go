package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka/internal/group"
)

// SinkOpt configures NewSink.
type SinkOpt func(*sinkConfig)

type sinkConfig struct {
	topic      string
	eos        bool
	txnPrefix  string
	txnTimeout time.Duration
	timeout    time.Duration
	manual     bool
	clientOpts []kgo.Opt
}

// Topic is the topic of messages whose Topic is empty.
func Topic(t string) SinkOpt { return func(c *sinkConfig) { c.topic = t } }

// ManualPartitions writes each message to its own Partition field, as
// read from a source or set by the flow. By default the partition follows
// from the key (murmur2, as the Java client does), so that messages with
// the same key stay in order.
func ManualPartitions() SinkOpt { return func(c *sinkConfig) { c.manual = true } }

// ExactlyOnce writes each epoch's messages in Kafka transactions that are
// committed only once the epoch is durable in the recovery directory, so a
// read_committed consumer sees every message exactly once across crashes,
// stops and rescales. See NewSink.
func ExactlyOnce() SinkOpt { return func(c *sinkConfig) { c.eos = true } }

// TransactionalIDPrefix sets the prefix of the transactional ids
// (default "runnel.<flow>.<step>"); the ids are "<prefix>.<worker>.<slot>".
// Two flows writing with the same prefix fence each other.
func TransactionalIDPrefix(p string) SinkOpt { return func(c *sinkConfig) { c.txnPrefix = p } }

// TransactionTimeout is the broker's limit for an open transaction
// (default 5 minutes; the broker caps it at transaction.max.timeout.ms,
// 15 minutes by default). A transaction must be committed before it runs
// out, also by the next run after a crash, or its output is lost: the
// snapshot interval (-s) may be at most a quarter of it, which the run
// checks before it starts. A longer timeout also holds back read_committed
// consumers longer when a worker dies for good.
func TransactionTimeout(d time.Duration) SinkOpt { return func(c *sinkConfig) { c.txnTimeout = d } }

// SinkTimeout bounds each flush and commit (default 30s): a broker that
// does not answer in time stops the run with an error naming it, and the
// next run resumes from the last durable epoch.
func SinkTimeout(d time.Duration) SinkOpt { return func(c *sinkConfig) { c.timeout = d } }

// SinkClientOpts adds franz-go client options (TLS, SASL, linger,
// compression). Transactional and partitioning options are set by the sink.
func SinkClientOpts(opts ...kgo.Opt) SinkOpt {
	return func(c *sinkConfig) { c.clientOpts = append(c.clientOpts, opts...) }
}

// NewSink writes messages to Kafka, one producer per worker.
//
// By default it is at-least-once: at every epoch's barrier the sink flushes
// and waits for the brokers' acknowledgements before the epoch can commit,
// so a crash may repeat the output of the epoch that was running, never
// lose any.
//
// With ExactlyOnce, each worker writes an epoch's messages inside a Kafka
// transaction. At the barrier it flushes the transaction and stores its
// transactional id, producer id and producer epoch with the snapshot; it
// commits the transaction only once the snapshot is durable. A resumed run
// first commits the transactions its snapshot names (a commit that already
// happened is recognised; one that cannot be done stops the run with an
// "exactly-once violated" error, never a silent loss), then starts its
// transactional producers, which fences zombies and aborts the unfinished
// epoch, which the run replays. After a rescale to fewer workers, the
// remaining workers finish and fence the old workers' transactional ids.
// Readers must use read_committed isolation.
func NewSink(brokers []string, opts ...SinkOpt) runnel.Sink[Message] {
	c := sinkConfig{txnTimeout: 5 * time.Minute, timeout: 30 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	return runnel.TwoPhaseOutput[Message, SinkState](&sink{brokers: brokers, cfg: c})
}

// SinkState is what the sink stores with each snapshot, per worker.
type SinkState struct {
	Worker  int   // the worker that wrote it
	Slots   int   // transactional ids this worker has used: <prefix>.<worker>.0 .. Slots-1
	Pending []Txn // flushed transactions not yet known to be committed, oldest first
}

// Txn names a flushed, uncommitted transaction.
type Txn struct {
	ID            string // transactional id
	ProducerID    int64
	ProducerEpoch int16
	Epoch         uint64 // the Runnel epoch it holds
}

type sink struct {
	brokers []string
	cfg     sinkConfig
}

// CheckEpochInterval refuses a snapshot interval that leaves too little
// room before the broker aborts a pre-committed transaction.
func (s *sink) CheckEpochInterval(d time.Duration) error {
	if s.cfg.eos && d > s.cfg.txnTimeout/4 {
		return fmt.Errorf("kafka: the snapshot interval %v is longer than a quarter of the transaction timeout %v; raise kafka.TransactionTimeout or lower -s", d, s.cfg.txnTimeout)
	}
	return nil
}

func (s *sink) opts() []kgo.Opt {
	o := append([]kgo.Opt{kgo.SeedBrokers(s.brokers...), kgo.RecordDeliveryTimeout(s.cfg.timeout)}, s.cfg.clientOpts...)
	if s.cfg.manual {
		o = append(o, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if s.cfg.topic != "" {
		o = append(o, kgo.DefaultProduceTopic(s.cfg.topic))
	}
	return o
}

func (s *sink) txnID(step string, worker, slot int) string {
	prefix := s.cfg.txnPrefix
	if prefix == "" {
		prefix = "runnel." + step
	}
	return prefix + "." + strconv.Itoa(worker) + "." + strconv.Itoa(slot)
}

func (s *sink) Build(bc runnel.BuildContext, resume []SinkState) (runnel.TwoPhaseSinkPartition[Message, SinkState], error) {
	step, worker, workers := bc.Step, bc.Worker, bc.Workers
	if len(s.brokers) == 0 {
		return nil, errors.New("kafka: no brokers given")
	}
	if m := group.FromContext(bc.Context); m != nil {
		return &groupSinkPart{m: m, s: s, worker: worker}, nil
	}
	p := &sinkPart{s: s, step: step, worker: worker, brokers: strings.Join(s.brokers, ",")}
	p.promise = p.onProduced
	if !s.cfg.eos {
		cl, err := kgo.NewClient(s.opts()...)
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		p.cl = cl
		return p, nil
	}
	ctx, cancel := context.WithTimeout(buildContext(bc), s.cfg.timeout)
	defer cancel()
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.brokers...)}, s.cfg.clientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	defer admin.Close()
	// Finish first what the durable snapshot names: a new producer on the
	// same id would abort it.
	slots := map[int]int{} // worker index → slots recorded
	maxOld := worker
	for _, st := range resume {
		for _, t := range st.Pending {
			if err := finishTxn(ctx, admin, t); err != nil {
				return nil, err
			}
		}
		slots[st.Worker] = max(slots[st.Worker], st.Slots)
		maxOld = max(maxOld, st.Worker)
	}
	// Fence: initialising every id this worker used, and those of old
	// worker indexes that now map to it, aborts their open transactions,
	// and a zombie's late commit gets PRODUCER_FENCED. Ids used after the
	// last durable snapshot are not recorded in it (a slot added during a
	// slow commit, a worker killed before its first snapshot): the broker
	// is asked which ids exist past the recorded ones.
	used := func(w int) (int, error) {
		n := slots[w]
		for {
			ok, err := txnIDExists(ctx, admin, s.txnID(step, w, n))
			if err != nil || !ok {
				return n, err
			}
			n++
		}
	}
	n, err := used(worker)
	if err != nil {
		return nil, err
	}
	for i := range max(n, 1) {
		sl, err := p.newSlot(ctx, s.txnID(step, worker, i))
		if err != nil {
			p.Close()
			return nil, err
		}
		p.slots = append(p.slots, sl)
	}
	for w := worker + workers; ; w += workers {
		n, err := used(w)
		if err != nil {
			p.Close()
			return nil, err
		}
		if n == 0 && w > maxOld {
			break
		}
		for i := range n {
			sl, err := p.newSlot(ctx, s.txnID(step, w, i))
			if err != nil {
				p.Close()
				return nil, err
			}
			sl.cl.Close()
		}
	}
	return p, nil
}

// txnIDExists asks the transaction coordinator whether a transactional id
// has ever been used.
func txnIDExists(ctx context.Context, cl *kgo.Client, id string) (bool, error) {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.TransactionStates) != 1 {
		err = fmt.Errorf("%d states for one id", len(resp.TransactionStates))
	}
	if err == nil {
		err = kerr.ErrorForCode(resp.TransactionStates[0].ErrorCode)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kerr.TransactionalIDNotFound):
		return false, nil
	}
	return false, fmt.Errorf("kafka: describe transactional id %s: %w", id, err)
}

// describeTxnState is the coordinator's state of a transactional id
// ("Ongoing", "Empty", ...).
func describeTxnState(ctx context.Context, cl *kgo.Client, id string) (string, error) {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{id}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.TransactionStates) == 1 {
		err = kerr.ErrorForCode(resp.TransactionStates[0].ErrorCode)
	}
	if err != nil {
		return "", err
	}
	return resp.TransactionStates[0].State, nil
}

// finishTxn commits a transaction stored with a durable snapshot, from a
// client that is not its producer (the broker checks only the ids). A
// commit that already happened succeeds again, or, if the producer went on
// to its next transaction, shows in the transaction's state.
// buildContext is the context that build code waits under: cancelled when
// the run is aborted or stopped during set-up.
func buildContext(bc runnel.BuildContext) context.Context {
	if bc.Context == nil {
		return context.Background()
	}
	return bc.Context
}

func finishTxn(ctx context.Context, cl *kgo.Client, t Txn) error {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = t.ID, t.ProducerID, t.ProducerEpoch, true
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.InvalidTxnState) {
		return fmt.Errorf("kafka: commit transaction %s of epoch %d (producer %d, epoch %d) stored with the snapshot: %w; the next run tries again",
			t.ID, t.Epoch, t.ProducerID, t.ProducerEpoch, err)
	}
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{t.ID}
	dresp, derr := dreq.RequestWith(ctx, cl)
	if derr == nil && len(dresp.TransactionStates) == 1 {
		derr = kerr.ErrorForCode(dresp.TransactionStates[0].ErrorCode)
	}
	if derr != nil {
		return fmt.Errorf("kafka: commit transaction %s of epoch %d: %w, and its state cannot be read: %v", t.ID, t.Epoch, err, derr)
	}
	ds := dresp.TransactionStates[0]
	// Only this sink's own producer, after its commit succeeded, moves the
	// id past the stored epoch: by one into its next transaction, or by
	// more after that transaction or a fencing restart ended.
	if ds.ProducerID == t.ProducerID && (ds.ProducerEpoch > t.ProducerEpoch+1 || (ds.ProducerEpoch == t.ProducerEpoch+1 && ds.State == "Ongoing")) {
		return nil
	}
	return fmt.Errorf("kafka: exactly-once violated: transaction %s of epoch %d (producer %d, epoch %d) cannot be committed (%v; the broker reports state %q, producer %d, epoch %d): it was aborted, most likely because the transaction timeout ran out, and that epoch's output is lost",
		t.ID, t.Epoch, t.ProducerID, t.ProducerEpoch, err, ds.State, ds.ProducerID, ds.ProducerEpoch)
}

type slot struct {
	id    string
	cl    *kgo.Client
	epoch uint64 // when pending: the Runnel epoch it holds
}

type sinkPart struct {
	s       *sink
	step    string
	worker  int
	brokers string
	promise func(*kgo.Record, error)

	cl *kgo.Client // at-least-once

	slots   []*slot // exactly-once: one transactional producer each
	cur     *slot   // the slot of the open transaction
	pending []*slot // flushed, waiting for Committed, oldest first

	mu  sync.Mutex
	err error // the first failed produce
}

func (p *sinkPart) newSlot(ctx context.Context, id string) (*slot, error) {
	o := append(p.s.opts(), kgo.TransactionalID(id), kgo.TransactionTimeout(p.s.cfg.txnTimeout))
	cl, err := kgo.NewClient(o...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil { // InitProducerID: fences older producers of this id
		cl.Close()
		return nil, fmt.Errorf("kafka: start transactional producer %s on brokers %s: %w", id, p.brokers, err)
	}
	return &slot{id: id, cl: cl}, nil
}

func (p *sinkPart) onProduced(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = fmt.Errorf("kafka: produce to %s/%d on brokers %s: %w", r.Topic, r.Partition, p.brokers, err)
	}
	p.mu.Unlock()
}

func (p *sinkPart) produceErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *sinkPart) WriteBatch(items []Message) error {
	if err := p.produceErr(); err != nil {
		return err
	}
	cl := p.cl
	if p.s.cfg.eos {
		if p.cur == nil {
			if err := p.begin(); err != nil {
				return err
			}
		}
		cl = p.cur.cl
	}
	recs := make([]kgo.Record, len(items))
	ctx := context.Background()
	for i := range items {
		toRecord(&items[i], &recs[i], p.s.cfg.topic)
		if recs[i].Topic == "" {
			return fmt.Errorf("kafka: a message has no topic and the sink has no default topic (kafka.Topic)")
		}
		cl.Produce(ctx, &recs[i], p.promise)
	}
	return nil
}

// begin opens a transaction on a slot that is not waiting for its commit,
// adding a slot (a new transactional id) when all are.
func (p *sinkPart) begin() error {
	var free *slot
	for _, sl := range p.slots {
		busy := false
		for _, q := range p.pending {
			busy = busy || q == sl
		}
		if !busy {
			free = sl
			break
		}
	}
	if free == nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.s.cfg.timeout)
		defer cancel()
		sl, err := p.newSlot(ctx, p.s.txnID(p.step, p.worker, len(p.slots)))
		if err != nil {
			return err
		}
		p.slots = append(p.slots, sl)
		free = sl
	}
	if err := free.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka: begin transaction %s: %w", free.id, err)
	}
	p.cur = free
	return nil
}

func (p *sinkPart) PreCommit(e runnel.Epoch) (SinkState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.s.cfg.timeout)
	defer cancel()
	st := SinkState{Worker: p.worker, Slots: len(p.slots)}
	if !p.s.cfg.eos {
		if err := p.cl.Flush(ctx); err != nil {
			return st, fmt.Errorf("kafka: flush to brokers %s: %w", p.brokers, err)
		}
		return st, p.produceErr()
	}
	if p.cur != nil {
		if err := p.cur.cl.Flush(ctx); err != nil {
			return st, fmt.Errorf("kafka: flush transaction %s to brokers %s: %w", p.cur.id, p.brokers, err)
		}
		if err := p.produceErr(); err != nil {
			return st, err
		}
		p.cur.epoch = e
		p.pending = append(p.pending, p.cur)
		p.cur = nil
	}
	for _, sl := range p.pending {
		pid, pep, err := sl.cl.ProducerID(ctx)
		if err != nil {
			return st, fmt.Errorf("kafka: producer id of transaction %s: %w", sl.id, err)
		}
		st.Pending = append(st.Pending, Txn{ID: sl.id, ProducerID: pid, ProducerEpoch: pep, Epoch: sl.epoch})
	}
	return st, nil
}

func (p *sinkPart) Committed(e runnel.Epoch) error {
	if !p.s.cfg.eos {
		return nil
	}
	for len(p.pending) > 0 && p.pending[0].epoch <= e {
		sl := p.pending[0]
		ctx, cancel := context.WithTimeout(context.Background(), p.s.cfg.timeout)
		err := sl.cl.EndTransaction(ctx, kgo.TryCommit)
		cancel()
		if err != nil {
			return fmt.Errorf("kafka: commit transaction %s of epoch %d on brokers %s: %w", sl.id, sl.epoch, p.brokers, err)
		}
		p.pending = p.pending[1:]
	}
	return nil
}

// Close closes the producers without committing: to the brokers this is a
// crash, and the next run finishes or aborts what is open.
func (p *sinkPart) Close() error {
	if p.cl != nil {
		p.cl.Close()
	}
	for _, sl := range p.slots {
		sl.cl.Close()
	}
	p.slots, p.pending, p.cur = nil, nil, nil
	return nil
}

// groupSinkPart is a sink's partition in group mode: it writes inside the
// member's transaction, which commits with the epoch's offsets and state,
// so it has nothing of its own to pre-commit or commit.
type groupSinkPart struct {
	m      group.Member
	s      *sink
	worker int
}

func (p *groupSinkPart) WriteBatch(items []Message) error {
	recs := make([]kgo.Record, len(items))
	for i := range items {
		toRecord(&items[i], &recs[i], p.s.cfg.topic)
		if recs[i].Topic == "" {
			return fmt.Errorf("kafka: a message has no topic and the sink has no default topic (kafka.Topic)")
		}
		p.m.Produce(&recs[i], p.s.cfg.manual)
	}
	return nil
}

func (p *groupSinkPart) PreCommit(runnel.Epoch) (SinkState, error) {
	return SinkState{Worker: p.worker}, nil
}

func (p *groupSinkPart) Committed(runnel.Epoch) error { return nil }

func (p *groupSinkPart) Close() error { return nil }
