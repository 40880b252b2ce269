package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"

	"github.com/runnel-dev/runnel/internal/proctest"
)

// Group mode is measured with member processes: the benchmark binary runs
// itself again with RUNNEL_BENCH_MEMBER set (see TestMain), once per
// member, against a kfake broker in the benchmark's own process. The hand
// baseline runs the same way, so both pay for the same processes, the same
// broker and the same completion check.

// memberEnv names the environment variable that makes this test binary a
// group member (its value is a JSON memberSpec) instead of running tests.
const memberEnv = "RUNNEL_BENCH_MEMBER"

// memberProfileEnv names an environment variable: a directory where each
// member process writes its CPU profile (cpu-KIND-GROUP-INDEX.out), for
// `go tool pprof bench.test DIR/cpu-runnel-gapp-3-0.out`.
const memberProfileEnv = "RUNNEL_BENCH_MEMBER_PROFILE"

// memberSpec says what a member process runs.
type memberSpec struct {
	Kind    string // "hand" or "runnel"
	Index   int    // member number, for the hand loop's transactional id
	Brokers []string
	Group   string // the consumer group (Runnel's --group APP)
	In, Out string
	Epoch   time.Duration // the commit interval (Runnel's -s)
	Workers int           // Runnel's -w
	// Session and TxnTimeout are the group session timeout and the
	// transaction timeout (Runnel's --group-session-timeout and
	// --group-transaction-timeout); zero keeps the defaults.
	Session, TxnTimeout time.Duration
}

func TestMain(m *testing.M) {
	if s := os.Getenv(memberEnv); s != "" {
		os.Exit(runMember(s))
	}
	os.Exit(m.Run())
}

// runMember runs a member until SIGTERM, then commits what it has and
// exits 0; any failure exits 1 with the error on stderr.
func runMember(specJSON string) int {
	var spec memberSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "member: bad %s: %v\n", memberEnv, err)
		return 1
	}
	if dir := os.Getenv(memberProfileEnv); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%s-%s-%d.out", spec.Kind, spec.Group, spec.Index)))
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "member: %s: %v\n", memberProfileEnv, err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	stop := make(chan struct{})
	go func() { <-sigs; close(stop) }()
	var err error
	switch spec.Kind {
	case "hand":
		err = handGroupMember(spec, stop)
	case "runnel":
		err = runnelGroupMember(spec, stop, os.Stderr)
	default:
		err = fmt.Errorf("unknown member kind %q", spec.Kind)
	}
	var stopped *runnel.InterruptedError
	if err != nil && !errors.As(err, &stopped) {
		fmt.Fprintf(os.Stderr, "member %d (%s): %v\n", spec.Index, spec.Kind, err)
		return 1
	}
	return 0
}

// handGroupMember is the baseline: a franz-go GroupTransactSession that
// consumes In, counts per key in a map and produces (key, count) to Out,
// committing one transaction (output and consumed offsets, with the group
// generation) every spec.Epoch, the epoch interval Runnel runs with. A
// transaction begins at the first record of an epoch (an empty
// transaction costs kgo a 500ms sleep); an aborted one (a rebalance)
// rolls the counts back.
func handGroupMember(spec memberSpec, stop <-chan struct{}) error {
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(spec.Brokers...),
		kgo.ConsumerGroup(spec.Group), kgo.ConsumeTopics(spec.In),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(fmt.Sprintf("%s-hand-%d", spec.Group, spec.Index)),
		kgo.TransactionTimeout(max(10*time.Second, 3*spec.Epoch)),
		kgo.DefaultProduceTopic(spec.Out),
	)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	counts := map[string]int{}
	undo := map[string]int{} // counts before the open transaction, for an abort
	var produceErr error
	var mu sync.Mutex
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			produceErr = errors.Join(produceErr, err)
			mu.Unlock()
		}
	}
	inTxn := false
	var epochEnd time.Time
	end := func(ctx context.Context) error {
		committed, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			return err
		}
		if !committed {
			for k, v := range undo {
				counts[k] = v
			}
		}
		clear(undo)
		inTxn = false
		mu.Lock()
		defer mu.Unlock()
		return produceErr
	}
	for {
		// While a transaction is open, a poll waits at most until the
		// epoch's end, so that the last records of the input commit
		// without more input coming.
		pollCtx, pollCancel := ctx, context.CancelFunc(func() {})
		if inTxn {
			pollCtx, pollCancel = context.WithDeadline(ctx, epochEnd)
		}
		fs := s.PollRecords(pollCtx, 10_000)
		pollCancel()
		if ctx.Err() != nil {
			break
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if fs.NumRecords() > 0 && !inTxn {
			if err := s.Begin(); err != nil {
				return err
			}
			inTxn, epochEnd = true, time.Now().Add(spec.Epoch)
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			n, ok := counts[k]
			if _, saved := undo[k]; !saved && ok {
				undo[k] = n
			} else if !saved {
				undo[k] = 0
			}
			counts[k] = n + 1
			s.Produce(ctx, &kgo.Record{Key: r.Key, Value: strconv.AppendInt(nil, int64(n+1), 10)}, promise)
		})
		if inTxn && time.Now().After(epochEnd) {
			if err := end(ctx); err != nil {
				return err
			}
		}
	}
	if inTxn {
		endCtx, endCancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer endCancel()
		return end(endCtx)
	}
	return nil
}

// runnelGroupMember runs the same keyed running count as a Runnel flow in
// group mode (--group spec.Group --brokers ... -s spec.Epoch).
func runnelGroupMember(spec memberSpec, stop <-chan struct{}, logTo io.Writer) error {
	cfg := runnel.DefaultConfig()
	cfg.Group, cfg.Brokers = spec.Group, spec.Brokers
	cfg.SnapshotInterval = spec.Epoch
	cfg.WorkersPerProcess = max(spec.Workers, 1)
	cfg.GroupSessionTimeout, cfg.GroupTransactionTimeout = spec.Session, spec.TxnTimeout
	// Info logs: the restore and takeover benchmarks read them.
	log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runnel.Run(context.Background(), groupCountFlow(spec.Brokers, spec.In, spec.Out), cfg, runnel.WithStop(stop), runnel.WithLogger(log))
}

// groupCountFlow is the keyed running count: messages from in, keyed by
// their key, (key, count so far) to out, exactly-once.
func groupCountFlow(brokers []string, in, out string) *runnel.Dataflow {
	flow := runnel.NewDataflow("gcount")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{in}))
	keyed := op.KeyOn("key", msgs, func(m kafka.Message) string { return string(m.Key) })
	counts := op.StatefulMap("count", keyed, func(n int, _ bool, _ kafka.Message) (int, bool, int) { return n + 1, true, n + 1 })
	op.Output("out", kafka.Encode("encode", counts, out, kafka.String(), kafka.JSON[int]()), kafka.NewSink(brokers, kafka.ExactlyOnce()))
	return flow
}

// TestGroupBenchFlowsAgree: the members BenchmarkGroup compares (the hand
// loop and Runnel in group mode), run in this process on a small input,
// write the same counts: every key's counts 1..n exactly once.
func TestGroupBenchFlowsAgree(t *testing.T) {
	const n = 2000
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	for _, kind := range []string{"hand", "runnel"} {
		t.Run(kind, func(t *testing.T) {
			in, out := "in-"+kind, "out-"+kind
			createTopic(t, brokers, in, 4)
			createTopic(t, brokers, out, 4)
			fillTopic(t, brokers, in, n)
			spec := memberSpec{Kind: kind, Brokers: brokers, Group: "agree-" + kind, In: in, Out: out, Epoch: 100 * time.Millisecond, Workers: 2}
			stop := make(chan struct{})
			done := make(chan error, 1)
			var logs proctest.SyncBuffer
			go func() {
				if kind == "hand" {
					done <- handGroupMember(spec, stop)
				} else {
					done <- runnelGroupMember(spec, stop, &logs)
				}
			}()
			seen := waitOutput(t, brokers, out, n, nil)
			close(stop)
			err := <-done
			var stopped *runnel.InterruptedError
			if err != nil && !errors.As(err, &stopped) {
				t.Fatalf("%s member: %v\n%s", kind, err, logs.String())
			}
			if err := seen.check(n); err != nil {
				t.Errorf("%s: %v", kind, err)
			}
		})
	}
}

// memberProc is a running member process.
type memberProc struct {
	cmd    *exec.Cmd
	stderr proctest.SyncBuffer
	done   chan struct{}
	err    error
}

func startMemberProc(tb testing.TB, spec memberSpec) *memberProc {
	tb.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	m := &memberProc{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	m.cmd.Env = append(os.Environ(), memberEnv+"="+string(js))
	m.cmd.Stderr = &m.stderr
	if err := m.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	return m
}

// stop ends the member with SIGTERM (it commits what it has) and reports
// how it exited.
func (m *memberProc) stop() error {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(time.Minute):
		m.cmd.Process.Kill()
		<-m.done
		return fmt.Errorf("no exit within a minute of SIGTERM; stderr:\n%s", m.stderr.String())
	}
	if m.err != nil {
		return fmt.Errorf("%v; stderr:\n%s", m.err, m.stderr.String())
	}
	return nil
}

func (m *memberProc) kill() {
	m.cmd.Process.Kill()
	<-m.done
}

// groupRecords is the input size of BenchmarkGroup (RUNNEL_BENCH_GROUP
// overrides it).
func groupRecords(b *testing.B) int {
	if s := os.Getenv("RUNNEL_BENCH_GROUP"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("RUNNEL_BENCH_GROUP=%q", s)
		}
		return n
	}
	return 300_000
}

// groupEpoch is the epoch (commit) interval of every member in
// BenchmarkGroup, Runnel's and the hand loop's alike.
const groupEpoch = 250 * time.Millisecond

// BenchmarkGroup: the keyed running count (1,000 keys, 100-byte values,
// one output record per input record) over a 4-partition topic of an
// in-process kfake broker, exactly-once, by member processes of one
// consumer group: hand (the franz-go GroupTransactSession loop,
// handGroupMember) with 1 and 2 members, and Runnel in group mode (g1, g2)
// with 1 and 2 members of -w 1. The four runs alternate within each
// iteration, so that all see the same machine. Each run starts its
// members on an empty topic, waits until the group is stable with every
// partition assigned, then writes the input and times until a
// read_committed reader has seen every output record; then it stops the
// members and checks every key's counts. Metrics: records/s of each, and
// g1/hand, g2/g1, hand2/hand and g2/hand2. Targets: g1/hand ≥ 0.5;
// g2/g1 ≥ 1.4 on 2 cores.
func BenchmarkGroup(b *testing.B) {
	n := groupRecords(b)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	cases := []struct {
		name, kind string
		members    int
	}{{"hand", "hand", 1}, {"hand2", "hand", 2}, {"g1", "runnel", 1}, {"g2", "runnel", 2}}
	spent := map[string]time.Duration{}
	round := 0
	b.ResetTimer()
	for range b.N {
		for _, tc := range cases {
			b.StopTimer() // setting up the members is not timed
			round++
			in, out, group := fmt.Sprint("gin-", round), fmt.Sprint("gout-", round), fmt.Sprint("gapp-", round)
			createTopic(b, brokers, in, 4)
			createTopic(b, brokers, out, 4)
			members := make([]*memberProc, tc.members)
			for i := range members {
				members[i] = startMemberProc(b, memberSpec{Kind: tc.kind, Index: i, Brokers: brokers, Group: group,
					In: in, Out: out, Epoch: groupEpoch, Workers: 1})
			}
			waitAssigned(b, c, group, tc.members, members)
			b.StartTimer()
			start := time.Now()
			fillTopic(b, brokers, in, n)
			seen := waitOutput(b, brokers, out, n, members)
			spent[tc.name] += time.Since(start)
			b.StopTimer()
			for i, m := range members {
				if err := m.stop(); err != nil {
					b.Fatalf("%s member %d: %v", tc.name, i, err)
				}
			}
			if err := seen.check(n); err != nil {
				b.Fatalf("%s: %v", tc.name, err)
			}
		}
	}
	rate := func(name string) float64 { return float64(n) * float64(b.N) / spent[name].Seconds() }
	for _, tc := range cases {
		b.ReportMetric(rate(tc.name), tc.name+"-rec/s")
	}
	b.ReportMetric(rate("g1")/rate("hand"), "g1/hand")
	b.ReportMetric(rate("g2")/rate("g1"), "g2/g1")
	b.ReportMetric(rate("hand2")/rate("hand"), "hand2/hand")
	b.ReportMetric(rate("g2")/rate("hand2"), "g2/hand2")
}

// waitAssigned waits until the group has members members and every
// partition of the topics they subscribe to is assigned.
func waitAssigned(tb testing.TB, c *kfake.Cluster, group string, members int, procs []*memberProc) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.WaitGroupInfo(ctx, group, func(g *kfake.GroupInfo) bool {
		for _, p := range procs {
			select {
			case <-p.done:
				return true // reported below
			default:
			}
		}
		if g == nil || g.State != "Stable" || len(g.Members) != members {
			return false
		}
		want := 0
		topics := map[string]bool{}
		for _, m := range g.Members {
			if m.NumAssigned() == 0 {
				return false
			}
			for _, t := range m.SubscribedTopics {
				if !topics[t] {
					topics[t] = true
					want += len(c.PartitionInfos(t))
				}
			}
		}
		return g.NumAssigned() == want
	})
	for i, p := range procs {
		select {
		case <-p.done:
			tb.Fatalf("member %d exited before the group was stable: %v\n%s", i, p.err, p.stderr.String())
		default:
		}
	}
	if err != nil {
		tb.Fatalf("group %s not stable with %d members and every partition assigned: %v (%+v)", group, members, err, c.GroupInfo(group))
	}
}

// outputSeen is what a read_committed reader saw of the output: how many
// records, and each key's counts.
type outputSeen struct {
	n    int
	last map[string]int
	dups int // counts seen twice for a key
	seen map[string]map[int]bool
}

func (o *outputSeen) check(n int) error {
	if o.n != n || o.dups > 0 {
		return fmt.Errorf("read %d output records (%d repeated counts), want %d", o.n, o.dups, n)
	}
	for k, v := range o.last {
		if v != n/1000 || len(o.seen[k]) != v {
			return fmt.Errorf("key %s: last count %d over %d distinct counts, want %d", k, v, len(o.seen[k]), n/1000)
		}
	}
	return nil
}

// waitOutput reads out read_committed until n records have come (or a
// member exits, or a minute passes) and returns what it saw.
func waitOutput(tb testing.TB, brokers []string, out string, n int, procs []*memberProc) *outputSeen {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	seen := &outputSeen{last: map[string]int{}, seen: map[string]map[int]bool{}}
	deadline := time.Now().Add(2 * time.Minute)
	for seen.n < n {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen.n++
			v, _ := strconv.Atoi(string(r.Value))
			k := string(r.Key)
			if seen.seen[k] == nil {
				seen.seen[k] = map[int]bool{}
			}
			if seen.seen[k][v] {
				seen.dups++
			}
			seen.seen[k][v] = true
			seen.last[k] = max(seen.last[k], v)
		})
		for i, p := range procs {
			select {
			case <-p.done:
				tb.Fatalf("member %d exited with %d of %d outputs: %v\n%s", i, seen.n, n, p.err, p.stderr.String())
			default:
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d outputs after 2 minutes", seen.n, n)
		}
	}
	return seen
}

// BenchmarkGroupTakeover: how long a killed member's keys stall, beyond
// the session timeout. Two Runnel members (processes, -s 100ms, session
// and transaction timeouts 1s) count 1,000 keys while the benchmark
// writes about 5,000 records/s; one member is SIGKILLed. takeover-ms is
// the time from the kill until every key has a committed count for a
// record written after the kill, minus the session timeout: the
// rebalance, the restore of the moved key groups from their changelogs,
// the replay of the input since the killed member's last commit, and one
// epoch. (The transaction timeout is set equal to the session timeout: a
// killed member's open transaction holds its output partitions' last
// stable offset until it times out, so a longer one would be measured
// instead.)
func BenchmarkGroupTakeover(b *testing.B) {
	const session = time.Second
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		in, out, group := fmt.Sprint("tin-", i), fmt.Sprint("tout-", i), fmt.Sprint("tapp-", i)
		createTopic(b, brokers, in, 4)
		createTopic(b, brokers, out, 4)
		spec := memberSpec{Kind: "runnel", Brokers: brokers, Group: group, In: in, Out: out,
			Epoch: 100 * time.Millisecond, Workers: 1, Session: session, TxnTimeout: session}
		members := []*memberProc{startMemberProc(b, spec), startMemberProc(b, spec)}
		waitAssigned(b, c, group, 2, members)

		w := startWriter(b, brokers, in)
		r := startReader(b, brokers, out)
		time.Sleep(2 * time.Second) // both members commit epochs
		written := w.snapshot()
		killed := time.Now()
		members[0].kill()
		b.StartTimer()
		stalled := r.waitPast(b, written, time.Minute, members[1:])
		b.StopTimer()
		w.stop()
		r.stop()
		total += stalled - session
		if err := members[1].stop(); err != nil {
			b.Fatalf("surviving member: %v", err)
		}
		b.Logf("kill → every key past its count at the kill: %v; survivor logged:\n%s", stalled.Round(time.Millisecond),
			logLines(members[1].stderr.String(), killed, "partitions assigned", "restored state"))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "takeover-ms")
}

// writer writes records to a topic in the background, 50 every 10ms
// over keys k0..k999 in turn, and counts what it wrote per key.
type writer struct {
	mu      sync.Mutex
	perKey  map[string]int
	cancel  context.CancelFunc
	done    chan struct{}
	failure error
}

func startWriter(tb testing.TB, brokers []string, topic string) *writer {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{perKey: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer cl.Close()
		value := bytes.Repeat([]byte("x"), 100)
		for i := 0; ctx.Err() == nil; {
			recs := make([]*kgo.Record, 50)
			for j := range recs {
				recs[j] = &kgo.Record{Key: []byte("k" + strconv.Itoa(i%1000)), Value: value}
				i++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() == nil {
					w.failure = err
				}
				return
			}
			w.mu.Lock()
			for _, r := range recs {
				w.perKey[string(r.Key)]++
			}
			w.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return w
}

// snapshot returns how many records of each key are written so far.
func (w *writer) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.perKey)
}

func (w *writer) stop() error {
	w.cancel()
	<-w.done
	return w.failure
}

// reader follows a count topic read_committed and keeps each key's
// highest count.
type reader struct {
	mu     sync.Mutex
	last   map[string]int
	cancel context.CancelFunc
	done   chan struct{}
}

func startReader(tb testing.TB, brokers []string, topic string) *reader {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{last: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			r.mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				v, _ := strconv.Atoi(string(rec.Value))
				r.last[string(rec.Key)] = max(r.last[string(rec.Key)], v)
			})
			r.mu.Unlock()
		}
	}()
	return r
}

// waitPast waits until every key of counts has a count above it and
// returns how long that took.
func (r *reader) waitPast(tb testing.TB, counts map[string]int, limit time.Duration, procs []*memberProc) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		r.mu.Lock()
		behind := 0
		for k, n := range counts {
			if r.last[k] <= n {
				behind++
			}
		}
		r.mu.Unlock()
		if behind == 0 {
			return time.Since(start)
		}
		for i, p := range procs {
			select {
			case <-p.done:
				tb.Fatalf("member %d exited: %v\n%s", i, p.err, p.stderr.String())
			default:
			}
		}
		if time.Since(start) > limit {
			tb.Fatalf("%d of %d keys still behind after %v", behind, len(counts), limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *reader) stop() {
	r.cancel()
	<-r.done
}

// logLines returns the lines of a text log that contain one of msgs and
// were logged after since.
func logLines(log string, since time.Time, msgs ...string) string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		ts, ok := logTime(line)
		if !ok || ts.Before(since) {
			continue
		}
		for _, m := range msgs {
			if strings.Contains(line, `msg="`+m+`"`) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// logTime reads the time=... field of a slog text line.
func logTime(line string) (time.Time, bool) {
	s, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, false
	}
	s, _, _ = strings.Cut(s, " ")
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// logField reads field key=value of a slog text line (value unquoted).
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if u, err := strconv.QuotedPrefix(v); err == nil {
			s, _ := strconv.Unquote(u)
			return s
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// restoreRecords is the changelog size of BenchmarkGroupRestore.
const restoreRecords = 100_000

// BenchmarkGroupRestore: restore time per 100k changelog records. One
// Runnel member counts 100,000 distinct keys (one record each, so the
// count step's changelog holds 100,000 records over its 4 key groups)
// and stops; a new member process then restores every key group from
// the changelog before it processes anything. restore-ms/100k is the
// "restored state" durations the new member logs, per 100,000 changelog
// records it logs reading.
func BenchmarkGroupRestore(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	var restored time.Duration
	var records int
	for i := range b.N {
		b.StopTimer()
		in, out, group := fmt.Sprint("rin-", i), fmt.Sprint("rout-", i), fmt.Sprint("rapp-", i)
		createTopic(b, brokers, in, 4)
		createTopic(b, brokers, out, 4)
		fillDistinct(b, brokers, in, restoreRecords)
		spec := memberSpec{Kind: "runnel", Brokers: brokers, Group: group, In: in, Out: out, Epoch: 250 * time.Millisecond, Workers: 1}
		first := startMemberProc(b, spec)
		r := startReader(b, brokers, out)
		for {
			r.mu.Lock()
			n := len(r.last)
			r.mu.Unlock()
			if n == restoreRecords {
				break
			}
			select {
			case <-first.done:
				b.Fatalf("first member exited: %v\n%s", first.err, first.stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		r.stop()
		if err := first.stop(); err != nil {
			b.Fatalf("first member: %v", err)
		}
		second := startMemberProc(b, spec)
		waitAssigned(b, c, group, 1, []*memberProc{second})
		var recs int
		var took time.Duration
		deadline := time.Now().Add(time.Minute)
		for recs < restoreRecords && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			recs, took = 0, 0
			for line := range strings.SplitSeq(second.stderr.String(), "\n") {
				if !strings.Contains(line, `msg="restored state"`) {
					continue
				}
				n, _ := strconv.Atoi(logField(line, "changelog_records"))
				d, _ := time.ParseDuration(logField(line, "duration"))
				recs += n
				took += d
			}
		}
		if err := second.stop(); err != nil {
			b.Fatalf("second member: %v", err)
		}
		if recs < restoreRecords {
			b.Fatalf("the new member logged restoring %d changelog records, want %d; it logged:\n%s", recs, restoreRecords, second.stderr.String())
		}
		restored += took
		records += recs
	}
	b.ReportMetric(float64(restored.Milliseconds())*100_000/float64(records), "restore-ms/100k")
	b.ReportMetric(float64(records)/float64(b.N), "changelog-records")
}

// fillDistinct writes n records with distinct keys k0..k(n-1).
func fillDistinct(b *testing.B, brokers []string, topic string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v")}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
