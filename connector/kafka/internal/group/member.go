package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel/internal/api"
	"github.com/runnel-dev/runnel/internal/config"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/runner"
)

// Settings configure a group member.
type Settings struct {
	// App is the application id: the consumer group, and the prefix of
	// every internal topic.
	App     string
	Brokers []string
	// KeyGroups is the number of key groups; 0 takes what the app
	// recorded, or at its first start the largest input topic's
	// partition count.
	KeyGroups int
	Workers   int
	// Interval is the epoch length: one transaction per interval.
	Interval time.Duration
	// SessionTimeout, Heartbeat and TransactionTimeout default to 10s, 1s
	// and max(10s, 3×Interval).
	SessionTimeout, Heartbeat, TransactionTimeout time.Duration
	Logger                                        *slog.Logger
	Clock                                         runner.Clock
	// Stop, when closed, ends the run after committing the open epoch.
	Stop <-chan struct{}
	// ClientOpts are added to every Kafka client (TLS, SASL, tests).
	ClientOpts []kgo.Opt
	// API, when set, serves the member's counters (--api-addr): its
	// workers' step counters, which carry on across rebuilds, and its
	// commits.
	API *api.Server
	// FromRecovery, when set, makes Run seed the group from this recovery
	// directory and return instead of joining (--from-recovery); the
	// report goes to Out.
	FromRecovery string
	Out          io.Writer
}

func init() { runner.GroupRun = runConfig }

// runConfig runs a member with the settings of the command line.
func runConfig(ctx context.Context, flow *plan.Dataflow, cfg config.Config, opt runner.Options) error {
	return Run(ctx, flow, Settings{
		App: cfg.Group, Brokers: cfg.Brokers, KeyGroups: cfg.KeyGroups, Workers: cfg.WorkersPerProcess,
		Interval: cfg.SnapshotInterval, SessionTimeout: cfg.GroupSessionTimeout,
		TransactionTimeout: cfg.GroupTransactionTimeout, Logger: opt.Logger, Clock: opt.Clock, Stop: opt.Stop,
		API: opt.API, FromRecovery: cfg.FromRecovery, Out: opt.Out, ClientOpts: testClientOpts(),
	})
}

// testClientOpts gives the Kafka client options of a member started from
// the command line; only tests set it (to cut a member off its brokers).
var testClientOpts = func() []kgo.Opt { return nil }

// keyedStep is a keyed step: its repartition and changelog topics.
type keyedStep struct {
	id          string
	repartition string
	changelog   string
	route       func(key string, groups int) (int, error)
}

// member is one process's membership of the group.
type member struct {
	set    Settings
	flow   *plan.Dataflow
	log    *slog.Logger
	kg     int
	inputs []string // input topics, sorted
	keyed  []*keyedStep
	byRep  map[string]*keyedStep
	byStep map[string]*keyedStep
	manual sync.Map // topics whose records keep their partition

	sess   *kgo.GroupTransactSession
	health *BrokerHealth
	adm    *kadm.Client
	base   *kgo.Client // admin and restore client (not in the group)

	// assignment, as the group's callbacks report it
	amu      sync.Mutex
	assigned map[string]map[int32]bool
	changed  bool

	// the current generation (one runner.Session per assignment)
	gen *generation

	retrying   bool // a group-session error was logged and has not cleared
	inTxn      bool // a transaction is open (begin)
	purged     time.Time
	purging    atomic.Bool
	purges     sync.WaitGroup
	produced   atomic.Int64
	produceMu  sync.Mutex
	produceErr error

	// view is what the API serves (nil without one): stats are the
	// workers' counters, handed to every session in turn, and attached
	// says the view is served (once the first session built every step).
	view     *api.Run
	stats    []*engine.Stats
	attached bool

	// mirror is the committed state of the key groups this member owns,
	// by step and key group: a rebuild restores those from here instead of
	// replaying their changelog.
	mirror map[string]map[int32]map[string][]byte
}

// generation is the member's engine for one assignment.
type generation struct {
	assign  map[string][]int32
	own     map[string]map[int32]bool
	sess    *runner.Session
	pending []atomic.Int64 // per worker: records queued and not yet read
	mu      sync.Mutex
	inputs  map[string][]*Queue // "topic/N" → queues of the input steps reading it
	remote  map[remoteKey]*remoteQueue
}

type remoteKey struct {
	worker int
	step   string
	input  int
}

type remoteQueue struct {
	mu   sync.Mutex
	vals [][]byte
}

// inputHeader names the input of a keyed step a repartition record is for.
const inputHeader = "runnel.input"

// Run runs flow as one member of the group set.App until ctx ends, a
// step fails, or set.Stop closes.
func Run(ctx context.Context, flow *plan.Dataflow, set Settings) (err error) {
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if set.Workers <= 0 {
		set.Workers = 1
	}
	if set.Interval <= 0 {
		set.Interval = 10 * time.Second
	}
	if set.SessionTimeout <= 0 {
		set.SessionTimeout = 10 * time.Second
	}
	if set.Heartbeat <= 0 {
		set.Heartbeat = max(set.SessionTimeout/10, 100*time.Millisecond)
	}
	if set.TransactionTimeout <= 0 {
		set.TransactionTimeout = max(10*time.Second, 3*set.Interval)
	}
	if err := flow.Validate(); err != nil {
		return fmt.Errorf("dataflow %q: %w", flow.ID(), err)
	}
	m := &member{set: set, flow: flow, log: set.Logger.With("flow", flow.ID(), "group", set.App),
		byRep: map[string]*keyedStep{}, byStep: map[string]*keyedStep{},
		assigned: map[string]map[int32]bool{}, mirror: map[string]map[int32]map[string][]byte{}}
	if err := m.plan(ctx); err != nil {
		return err
	}
	if set.API != nil {
		start := time.Now()
		m.view = &api.Run{Graph: flow.Graph(), Start: start, Interval: set.Interval, Commits: api.NewCommits()}
		for range set.Workers {
			m.stats = append(m.stats, engine.NewStats(func() time.Duration { return time.Since(start) }))
		}
		m.view.Workers = m.stats
	}
	// Internal topics are read right after they are created: a short
	// metadata age keeps the client from waiting 5s to see them.
	m.base, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(set.Brokers...), kgo.MetadataMinAge(100 * time.Millisecond)}, set.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("group %s: %w", set.App, err)
	}
	defer m.base.Close()
	m.adm = kadm.NewClient(m.base)
	if set.FromRecovery != "" {
		if m.set.Out == nil {
			m.set.Out = io.Discard
		}
		store, err := m.openImport(ctx)
		if err != nil {
			return err
		}
		defer store.Close()
		if err := m.setup(ctx); err != nil {
			return err
		}
		return m.importRecovery(ctx, store)
	}
	if err := m.setup(ctx); err != nil {
		return err
	}
	if err := m.join(); err != nil {
		return err
	}
	defer func() {
		if m.gen != nil {
			err = errors.Join(err, m.gen.sess.Stop())
		}
		m.purges.Wait()
		// The last poll blocks rebalances (BlockRebalanceOnPoll), and
		// leaving the group is one.
		m.sess.CloseAllowingRebalance()
	}()
	return m.loop(ctx)
}

// plan finds the flow's input topics and keyed steps. Every input must be
// a Kafka source: asked for its partitions with a member in its context,
// a Kafka source names its topics; any other source cannot be divided
// among the members of a group.
func (m *member) plan(ctx context.Context) error {
	var errs []error
	topics := map[string]bool{}
	for _, st := range m.flow.Steps() {
		if st.State != nil && st.State.Check != nil {
			if err := st.State.Check(); err != nil {
				errs = append(errs, fmt.Errorf("step %s: %w", st.ID, err))
			}
		}
		switch {
		case st.Input:
			probe := &probe{}
			if st.State != nil && st.State.ListParts != nil {
				if _, err := st.State.ListParts(WithMember(ctx, probe)); err != nil {
					errs = append(errs, fmt.Errorf("step %s: %w", st.ID, err))
					continue
				}
			}
			if len(probe.topics) == 0 {
				errs = append(errs, fmt.Errorf("step %s: group mode reads only Kafka sources (connector/kafka): the members of a group cannot divide this input among them", st.ID))
			}
			for _, t := range probe.topics {
				topics[t] = true
			}
		case st.State != nil && st.State.Keyed:
			k := &keyedStep{id: st.ID, repartition: m.set.App + "." + st.ID + ".repartition",
				changelog: m.set.App + "." + st.ID + ".changelog", route: st.State.Route}
			m.keyed = append(m.keyed, k)
			m.byRep[k.repartition] = k
			m.byStep[k.id] = k
			m.manual.Store(k.repartition, true)
			m.manual.Store(k.changelog, true)
		}
	}
	m.inputs = slices.Sorted(maps.Keys(topics))
	return errors.Join(errs...)
}

// probe is the member a source sees while plan asks for its topics.
type probe struct{ topics []string }

func (p *probe) Assigned(topics []string) ([]string, error) {
	p.topics = append(p.topics, topics...)
	return nil, nil
}
func (p *probe) Queue(int, string, int32) *Queue { return nil }
func (p *probe) Produce(*kgo.Record, bool)       {}

// join makes the group client: one transactional producer and consumer
// for the member (kgo.GroupTransactSession).
func (m *member) join() error {
	topics := slices.Clone(m.inputs)
	for _, k := range m.keyed {
		topics = append(topics, k.repartition)
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(m.set.Brokers...),
		kgo.ClientID("runnel." + m.fingerprint()),
		kgo.ConsumerGroup(m.set.App),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(m.set.App + "." + hex.EncodeToString(id)),
		kgo.TransactionTimeout(m.set.TransactionTimeout),
		kgo.SessionTimeout(m.set.SessionTimeout),
		kgo.HeartbeatInterval(m.set.Heartbeat),
		kgo.RebalanceTimeout(max(time.Minute, 3*m.set.Interval)),
		kgo.BlockRebalanceOnPoll(),
		// An epoch's output waits in the producer until the epoch
		// commits: let a busy epoch buffer more than kgo's 10k records
		// without blocking the workers.
		kgo.MaxBufferedRecords(256 << 10),
		// What one step commits, the next reads: fetches that wait less
		// pass records between steps sooner.
		kgo.FetchMaxWait(max(10*time.Millisecond, min(m.set.Interval/4, 500*time.Millisecond))),
		kgo.RecordPartitioner(partitioner{m}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.onAssigned(a) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.onRevoked(r, "revoked") }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { m.onRevoked(l, "lost") }),
	}, m.set.ClientOpts...)
	m.health = &BrokerHealth{}
	opts = append(opts, kgo.WithHooks(m.health))
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("group %s: %w", m.set.App, err)
	}
	m.sess = sess
	return nil
}

func (m *member) onAssigned(a map[string][]int32) {
	if len(a) == 0 {
		return
	}
	m.amu.Lock()
	defer m.amu.Unlock()
	for t, ps := range a {
		if m.assigned[t] == nil {
			m.assigned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			m.assigned[t][p] = true
		}
	}
	m.changed = true
	m.log.Info("partitions assigned", "partitions", describe(a))
}

func (m *member) onRevoked(r map[string][]int32, how string) {
	if len(r) == 0 {
		return
	}
	m.amu.Lock()
	defer m.amu.Unlock()
	for t, ps := range r {
		for _, p := range ps {
			delete(m.assigned[t], p)
		}
	}
	m.changed = true
	m.log.Info("partitions "+how, "partitions", describe(r))
}

func describe(a map[string][]int32) string {
	var s []string
	for _, t := range slices.Sorted(maps.Keys(a)) {
		ps := slices.Clone(a[t])
		slices.Sort(ps)
		for _, p := range ps {
			s = append(s, t+"/"+strconv.Itoa(int(p)))
		}
	}
	return fmt.Sprint(s)
}

// assignment returns the current assignment and clears the changed flag.
func (m *member) assignment() map[string][]int32 {
	m.amu.Lock()
	defer m.amu.Unlock()
	m.changed = false
	a := map[string][]int32{}
	for t, ps := range m.assigned {
		for p := range ps {
			a[t] = append(a[t], p)
		}
		slices.Sort(a[t])
	}
	return a
}

func (m *member) assignmentChanged() bool {
	m.amu.Lock()
	defer m.amu.Unlock()
	return m.changed
}

// purgeEvery is how often a member deletes the repartition records it
// has consumed and committed.
var purgeEvery = 30 * time.Second

// purge deletes, every purgeEvery, the records of the repartition
// partitions this member owns below its committed offsets: they are read
// and their effects are in the changelog, so the topics do not grow
// forever (Kafka Streams does the same). It runs in the background; a
// failure is only logged, the next purge retries.
func (m *member) purge() {
	if len(m.keyed) == 0 || time.Since(m.purged) < purgeEvery || m.purging.Load() {
		return
	}
	m.purged = time.Now()
	offsets := kadm.Offsets{}
	for t, ps := range m.sess.Client().CommittedOffsets() {
		if m.byRep[t] == nil {
			continue
		}
		for p, o := range ps {
			if m.gen.own[t][p] && o.Offset > 0 {
				offsets.Add(kadm.Offset{Topic: t, Partition: p, At: o.Offset})
			}
		}
	}
	if len(offsets) == 0 {
		return
	}
	m.purging.Store(true)
	m.purges.Go(func() {
		defer m.purging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := m.adm.DeleteRecords(ctx, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			m.log.Warn("could not delete consumed repartition records; retrying later", "err", err.Error())
		}
	})
}

// begin opens the member's transaction, if none is open. Everything the
// workers emit goes into it, so it is open whenever a session runs: a
// timer can fire as soon as a session starts.
func (m *member) begin() error {
	if m.inTxn {
		return nil
	}
	if err := m.sess.Begin(); err != nil {
		return fmt.Errorf("group %s: begin transaction: %w", m.set.App, m.withBrokers(err))
	}
	m.inTxn = true
	return nil
}

// abort ends the open transaction, if any, without committing: its
// records are discarded and the consumer rewinds to the committed offsets.
func (m *member) abort() error {
	if !m.inTxn {
		return nil
	}
	m.inTxn = false
	ctx, cancel := context.WithTimeout(context.Background(), m.set.TransactionTimeout)
	defer cancel()
	if _, err := m.sess.End(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("group %s: abort transaction: %w", m.set.App, m.withBrokers(err))
	}
	return nil
}

// withBrokers adds what the client knows of unreachable brokers to err, so
// that a commit that timed out says why.
func (m *member) withBrokers(err error) error {
	if herr := m.health.Check(0, m.set.Brokers); herr != nil {
		return fmt.Errorf("%w (%v)", err, herr)
	}
	return err
}

// loop runs epochs until the end: each is one transaction.
func (m *member) loop(ctx context.Context) error {
	stop := m.set.Stop
	var committed engine.Epoch
	abort := m.abort
	fail := func(err error) error { return errors.Join(err, abort()) }
	for {
		select {
		case <-stop:
			if err := abort(); err != nil {
				return err
			}
			return &runner.InterruptedError{Group: m.set.App}
		default:
		}
		if ctx.Err() != nil {
			return fail(context.Cause(ctx))
		}
		if m.gen == nil || m.assignmentChanged() {
			if err := abort(); err != nil {
				return err
			}
			if err := m.rebuild(ctx); err != nil {
				return err
			}
			committed = 0
		}
		if err := m.begin(); err != nil {
			return err
		}
		open := committed + 1
		m.produced.Store(0)
		polled, restart, err := m.poll(ctx, stop)
		if err != nil {
			return fail(err)
		}
		if restart {
			// The assignment changed before this epoch did anything, or
			// records came from a partition this generation does not own:
			// give the epoch up (the offsets rewind) and rebuild.
			if err := abort(); err != nil {
				return err
			}
			if err := m.rebuild(ctx); err != nil {
				return err
			}
			committed = 0
			continue
		}
		m.gen.sess.Close(open)
		rows, err := m.gen.sess.Wait(ctx, open)
		if err != nil {
			return fail(err)
		}
		changes, err := m.changelog(rows)
		if err != nil {
			return fail(err)
		}
		if polled == 0 && m.produced.Load() == 0 && len(changes) == 0 {
			// Nothing happened: no transaction to end (ending one that
			// consumed nothing costs kgo a 500ms pause).
			if m.view != nil {
				m.view.Commits.At.Store(time.Now().UnixNano()) // up to date
			}
			committed = open
			m.gen.sess.Committed(open)
			m.sess.AllowRebalance()
			continue
		}
		for _, c := range changes {
			m.sess.Produce(ctx, c.rec, m.onProduced)
		}
		if err := m.takeProduceErr(); err != nil {
			return fail(err)
		}
		ectx, cancel := context.WithTimeout(ctx, m.set.TransactionTimeout)
		ended := time.Now()
		ok, err := m.sess.End(ectx, kgo.TryCommit)
		cancel()
		m.inTxn = false
		if err == nil {
			err = m.takeProduceErr()
		}
		if err != nil {
			return fmt.Errorf("group %s: commit epoch: %w", m.set.App, m.withBrokers(err))
		}
		if !ok {
			m.log.Info("epoch aborted: the group rebalanced during it; rebuilding from the last commit")
			if err := m.rebuild(ctx); err != nil {
				return err
			}
			committed = 0
			m.sess.AllowRebalance()
			continue
		}
		for _, c := range changes {
			m.remember(c)
		}
		if m.view != nil {
			took := time.Since(ended)
			c := m.view.Commits
			c.Epoch.Add(1) // the member's committed transactions
			c.At.Store(time.Now().UnixNano())
			c.Rows.Add(int64(len(changes)))
			c.Duration.Observe(took.Seconds(), uint64(took))
		}
		m.purge()
		// The next transaction opens before the workers go on: a timer
		// may fire as soon as they do.
		if err := m.begin(); err != nil {
			return err
		}
		committed = open
		m.gen.sess.Committed(open)
		m.sess.AllowRebalance()
	}
}

// poll reads records for one epoch and queues them for the workers. It
// reports how many it queued, and restart when the epoch must be given up
// before it did anything (see loop).
func (m *member) poll(ctx context.Context, stop <-chan struct{}) (polled int, restart bool, err error) {
	deadline := time.Now().Add(m.set.Interval)
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		if stop != nil {
			go func() {
				select {
				case <-stop:
					cancel()
				case <-pctx.Done():
				}
			}()
		}
		fs := m.sess.PollRecords(pctx, 4*engine.BatchSize)
		cancel()
		for _, fe := range fs.Errors() {
			var ke *kerr.Error
			switch {
			case errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled):
			case fe.Topic == "" && expelled(fe.Err):
				// The coordinator dropped this member (no heartbeat within
				// the session timeout, or a rebalance it joined too late):
				// its partitions are lost, their open transaction aborts,
				// and the client joins again as a new member, as Kafka
				// Streams does; the epoch is then rebuilt for what it gets.
				if !m.retrying {
					m.log.Warn("group session: the coordinator dropped this member; joining again (a longer --group-session-timeout helps if this repeats)",
						"err", fe.Err.Error(), "session_timeout", m.set.SessionTimeout.String())
					m.retrying = true
				}
			case fe.Topic == "" && !(errors.As(fe.Err, &ke) && !ke.Retriable):
				// The group session could not be joined or kept, for a
				// reason that may pass (a broker restarting): the client
				// retries, and the broker-health limit below ends a wait
				// that lasts.
				if !m.retrying {
					m.log.Warn("group session: retrying", "err", fe.Err.Error())
					m.retrying = true
				}
			default:
				what := "fetch " + fe.Topic + "/" + strconv.Itoa(int(fe.Partition))
				if fe.Topic == "" {
					what = "group session"
				}
				return polled, false, fmt.Errorf("group %s: %s: %w", m.set.App, what, fe.Err)
			}
		}
		if m.assignmentChanged() && polled == 0 && m.produced.Load() == 0 {
			return 0, true, nil
		}
		if len(fs.Errors()) == 0 {
			m.retrying = false
		}
		if err := m.health.Check(m.brokerTimeout(), m.set.Brokers); err != nil {
			return polled, false, fmt.Errorf("group %s: %w", m.set.App, err)
		}
		n, ok := m.dispatch(fs)
		if !ok {
			return polled, true, nil
		}
		polled += n
		if err := m.waitQueued(ctx); err != nil {
			return polled, false, err
		}
		select {
		case <-stop:
			return polled, false, nil
		default:
		}
		if ctx.Err() != nil {
			return polled, false, context.Cause(ctx)
		}
		if !time.Now().Before(deadline) || m.assignmentChanged() {
			return polled, false, nil
		}
	}
}

// expelled reports whether a group-session error means the coordinator no
// longer counts this member in the group: the client then joins again by
// itself (kgo's group loop always retries), so the member goes on.
func expelled(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.RebalanceInProgress)
}

// brokerTimeout is how long a member waits for unreachable brokers
// before it fails (a supervisor restarts it; its partitions move on after
// the session timeout anyway).
func (m *member) brokerTimeout() time.Duration { return max(5*time.Second, 3*m.set.SessionTimeout) }

// maxQueued bounds the records polled and not yet read by the workers.
const maxQueued = 64 * engine.BatchSize

// waitQueued holds polling back while the workers have much to read.
func (m *member) waitQueued(ctx context.Context) error {
	for {
		var n int64
		for i := range m.gen.pending {
			n += m.gen.pending[i].Load()
		}
		if n < maxQueued {
			return nil
		}
		select {
		case <-m.gen.sess.Failed():
			if err := m.gen.sess.Err(); err != nil {
				return err
			}
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Millisecond):
		}
	}
}

// dispatch queues polled records for the workers that read them. ok is
// false if a record belongs to a partition this generation does not own.
func (m *member) dispatch(fs kgo.Fetches) (n int, ok bool) {
	g := m.gen
	W := len(g.pending)
	ok = true
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 || !ok {
			return
		}
		if !g.own[p.Topic][p.Partition] {
			ok = false
			return
		}
		if k := m.byRep[p.Topic]; k != nil {
			w := int(p.Partition) % W
			// Runs of records for one input go to its queue under one lock.
			for i := 0; i < len(p.Records); {
				in := inputOf(p.Records[i])
				j := i + 1
				for j < len(p.Records) && inputOf(p.Records[j]) == in {
					j++
				}
				q := g.remoteQueue(remoteKey{worker: w, step: k.id, input: in})
				q.mu.Lock()
				for _, r := range p.Records[i:j] {
					q.vals = append(q.vals, r.Value)
				}
				q.mu.Unlock()
				i = j
			}
			g.pending[w].Add(int64(len(p.Records)))
			n += len(p.Records)
			g.sess.Wake(w)
			return
		}
		g.mu.Lock()
		qs := g.inputs[p.Topic+"/"+strconv.Itoa(int(p.Partition))]
		g.mu.Unlock()
		for _, q := range qs {
			q.push(p.Records)
			n += len(p.Records)
			q.wake()
		}
	})
	return n, ok
}

// inputOf is the keyed step's input a repartition record is for (0
// without the header).
func inputOf(r *kgo.Record) int {
	for _, h := range r.Headers {
		if h.Key == inputHeader {
			in, _ := strconv.Atoi(string(h.Value))
			return in
		}
	}
	return 0
}

func (g *generation) remoteQueue(k remoteKey) *remoteQueue {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := g.remote[k]
	if q == nil {
		q = &remoteQueue{}
		g.remote[k] = q
	}
	return q
}

// Assigned implements Member.
func (m *member) Assigned(topics []string) ([]string, error) {
	var parts []string
	for _, t := range topics {
		for _, p := range m.gen.assign[t] {
			parts = append(parts, t+"/"+strconv.Itoa(int(p)))
		}
	}
	return parts, nil
}

// Queue implements Member.
func (m *member) Queue(worker int, topic string, partition int32) *Queue {
	g := m.gen
	q := newQueue(&g.pending[worker], func() { g.sess.Wake(worker) })
	name := topic + "/" + strconv.Itoa(int(partition))
	g.mu.Lock()
	g.inputs[name] = append(g.inputs[name], q)
	g.mu.Unlock()
	return q
}

// Produce implements Member.
func (m *member) Produce(r *kgo.Record, manual bool) {
	if manual {
		m.manual.Store(r.Topic, true)
	}
	m.produced.Add(1)
	m.sess.Produce(context.Background(), r, m.onProduced)
}

func (m *member) onProduced(r *kgo.Record, err error) {
	if err == nil || errors.Is(err, kgo.ErrAborting) {
		// ErrAborting: the record was buffered in a transaction this
		// member aborted (a rebalance, a stop): discarding it is the
		// point, and the epoch runs again from the last commit.
		return
	}
	m.produceMu.Lock()
	if m.produceErr == nil {
		m.produceErr = fmt.Errorf("group %s: produce to %s/%d: %w", m.set.App, r.Topic, r.Partition, err)
	}
	m.produceMu.Unlock()
}

func (m *member) takeProduceErr() error {
	m.produceMu.Lock()
	defer m.produceMu.Unlock()
	return m.produceErr
}

// KeyGroups implements engine.Remote.
func (m *member) KeyGroups() int { return m.kg }

// Send implements engine.Remote: the item goes to the step's repartition
// topic at its key group, inside the open transaction.
func (m *member) Send(step string, input, kg int, value []byte) error {
	k := m.byStep[step]
	if k == nil {
		return fmt.Errorf("step %s is not a keyed step of the plan", step)
	}
	r := &kgo.Record{Topic: k.repartition, Partition: int32(kg), Value: value}
	if input != 0 {
		r.Headers = []kgo.RecordHeader{{Key: inputHeader, Value: []byte(strconv.Itoa(input))}}
	}
	m.produced.Add(1)
	m.sess.Produce(context.Background(), r, m.onProduced)
	return nil
}

// Take implements engine.Remote.
func (m *member) Take(worker int, step string, input int, buf [][]byte) [][]byte {
	g := m.gen
	g.mu.Lock()
	q := g.remote[remoteKey{worker: worker, step: step, input: input}]
	g.mu.Unlock()
	if q == nil {
		return buf
	}
	q.mu.Lock()
	n := len(q.vals)
	buf = append(buf, q.vals...)
	clear(q.vals)
	q.vals = q.vals[:0]
	q.mu.Unlock()
	g.pending[worker].Add(-int64(n))
	return buf
}

// partitioner keeps the partition of records for internal topics (and
// sinks with kafka.ManualPartitions) and hashes keys for the rest, as the
// Kafka sink does in one process.
type partitioner struct{ m *member }

var hashed = kgo.UniformBytesPartitioner(64<<10, true, true, nil)

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if _, ok := p.m.manual.Load(topic); ok {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return hashed.ForTopic(topic)
}
