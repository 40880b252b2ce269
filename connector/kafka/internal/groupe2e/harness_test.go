package groupe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/runnel-dev/runnel/internal/proctest"
)

// The helpers of the real-process tests: built binaries, a development
// broker process, input with unique ids and its expected results computed
// directly, member processes, and readers of the outputs (franz-go and
// kcat, both read_committed).

var binaries = proctest.Binaries{Pkgs: map[string]string{
	"runnel":     "github.com/runnel-dev/runnel/cmd/runnel",
	"kafkagroup": "github.com/runnel-dev/runnel/examples/kafkagroup",
}}

// bins builds `runnel` and this example once per test binary.
func bins(t *testing.T) (runnelBin, exampleBin string) {
	t.Helper()
	return binaries.Path(t, "runnel"), binaries.Path(t, "kafkagroup")
}

// startBroker starts the development broker on a free port with a 100ms
// minimum group session timeout and the given topics (name:partitions);
// it is stopped at the end of the test.
func startBroker(t *testing.T, runnelBin string, topics ...string) *proctest.DevBroker {
	t.Helper()
	args := []string{"--addr", "127.0.0.1:0", "--group-min-session-timeout", "100ms"}
	for _, tp := range topics {
		args = append(args, "--topic", tp)
	}
	return proctest.StartDevBroker(t, runnelBin, args...)
}

// Options are examples/kafkagroup's own flags.
type Options struct {
	In, Counts, Windows string
	Window, Wait        time.Duration
}

// args are the flags that give o to the example.
func (o Options) args() []string {
	return []string{"--in", o.In, "--counts", o.Counts, "--windows", o.Windows,
		"--window", o.Window.String(), "--wait", o.Wait.String()}
}

// Count is a record of the example's "counts" topic (the value; the key is
// the word).
type Count struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

// WindowCount is a record of the example's "windows" topic.
type WindowCount struct {
	Window int64     `json:"window"`
	Start  time.Time `json:"start"`
	Count  int       `json:"count,omitempty"`
	Late   bool      `json:"late,omitempty"`
	ID     string    `json:"id,omitempty"`
}

// input is one message of the input topic.
type input struct {
	id, word string
	at       time.Time
}

// testOptions are the example's flags in these tests: 1-minute windows
// that wait 2 minutes of event time; the input's event time advances 200ms
// per message, so windows close while the input is read.
func testOptions() Options {
	return Options{In: "words", Counts: "counts", Windows: "windows", Window: time.Minute, Wait: 2 * time.Minute}
}

var epoch0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// makeInput makes n messages over vocab words picked at random, with ids
// "0".."n-1" and event times 200ms apart, then one message per word a day
// later ("end-<word>") that closes the word's windows.
func makeInput(seed uint64, n, vocab int) []input {
	rng := rand.New(rand.NewPCG(seed, 7))
	in := make([]input, 0, n+vocab)
	for i := range n {
		in = append(in, input{id: strconv.Itoa(i), word: fmt.Sprintf("w%02d", rng.IntN(vocab)), at: epoch0.Add(time.Duration(i) * 200 * time.Millisecond)})
	}
	for w := range vocab {
		word := fmt.Sprintf("w%02d", w)
		in = append(in, input{id: "end-" + word, word: word, at: epoch0.Add(24 * time.Hour)})
	}
	return in
}

// expected is what a one-process run writes for an input: the running
// count of every message (by id) and every closed window's count (by word
// and window id). It is computed directly: the input's messages are keyed
// by word, so each word's messages are in one partition, in input order,
// and no message is late (event times increase per word).
type expected struct {
	counts  map[string]Count         // by id
	windows map[string]map[int64]int // word → window id → count
	nWin    int
}

func expect(in []input, o Options) expected {
	e := expected{counts: map[string]Count{}, windows: map[string]map[int64]int{}}
	seen := map[string]int{}
	last := map[string]time.Time{}
	for _, m := range in {
		seen[m.word]++
		e.counts[m.id] = Count{ID: m.id, N: seen[m.word]}
		last[m.word] = m.at
	}
	for _, m := range in {
		// A window closes once a later message of the word is at least
		// Wait past its end; the last message (the day-later one) closes
		// every earlier window and leaves its own open.
		id := int64(m.at.Sub(time.Unix(0, 0)) / o.Window)
		end := time.Unix(0, 0).Add(time.Duration(id+1) * o.Window)
		if !last[m.word].Before(end.Add(o.Wait)) {
			if e.windows[m.word] == nil {
				e.windows[m.word] = map[int64]int{}
			}
			if e.windows[m.word][id] == 0 {
				e.nWin++
			}
			e.windows[m.word][id]++
		}
	}
	return e
}

// produce writes messages (key the word, value the id, timestamp the
// event time) and waits until the broker has them.
func produce(t *testing.T, addr, topic string, in []input) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(in))
	for i, m := range in {
		recs[i] = &kgo.Record{Key: []byte(m.word), Value: []byte(m.id), Timestamp: m.at}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Errorf("produce to %s: %v", topic, err)
	}
}

// produceSlowly writes in in chunks of chunk messages every pause, in the
// background; the returned channel closes when everything is written (and
// the test waits for it at its end, before the broker stops, also when it
// ends early).
func produceSlowly(t *testing.T, addr, topic string, in []input, chunk int, pause time.Duration) <-chan struct{} {
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		for i := 0; i < len(in); i += chunk {
			produce(t, addr, topic, in[i:min(i+chunk, len(in))])
			time.Sleep(pause)
		}
	}()
	return done
}

// member is a running kafkagroup process.
type member struct {
	name   string
	cmd    *exec.Cmd
	stderr *proctest.SyncBuffer
	done   chan struct{}
	err    error // after done
}

// startMember starts the example as a member of app with the test's
// topics and options, 100ms epochs, info logs and short session and
// transaction timeouts.
func startMember(t *testing.T, bin, name, addr, app string, o Options, extra ...string) *member {
	t.Helper()
	args := append(o.args(), "--group", app, "--brokers", addr, "-s", "100ms", "--log-level", "info")
	args = append(args, groupTimeouts...)
	args = append(args, extra...)
	m := &member{name: name, cmd: exec.Command(bin, args...), stderr: &proctest.SyncBuffer{}, done: make(chan struct{})}
	m.cmd.Stderr = m.stderr
	m.cmd.Stdout = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.err = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		<-m.done
		if t.Failed() {
			t.Logf("member %s (%v) logged:\n%s", m.name, m.err, m.stderr.String())
		}
	})
	return m
}

// groupTimeouts are the group-mode timeouts the members run with in these
// tests: a 1s session (the broker allows 100ms; members heartbeat every
// 100ms) and a 2s transaction timeout, so a killed member's partitions
// move within seconds.
var groupTimeouts = []string{"--group-session-timeout", "1s", "--group-transaction-timeout", "2s"}

// kill sends SIGKILL and waits for the process to end.
func (m *member) kill() {
	m.cmd.Process.Kill()
	<-m.done
}

// stop sends SIGTERM and waits (up to limit) for the graceful stop: exit
// status 130 after the member committed its last epoch and left the group.
func (m *member) stop(t *testing.T, limit time.Duration) {
	t.Helper()
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(limit):
		t.Errorf("member %s did not stop within %v of SIGTERM", m.name, limit)
		m.kill()
		return
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("member %s: exit status %d after SIGTERM (%v), want 130 (a graceful stop)", m.name, code, m.err)
	}
}

// exited reports whether the process has ended.
func (m *member) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// progress follows a topic read_committed from its start in the
// background and counts the records seen.
type progress struct {
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
	done   chan struct{}
}

func follow(t *testing.T, addr, topic string) *progress {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &progress{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			p.mu.Lock()
			p.n += fs.NumRecords()
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *progress) close() {
	p.cancel()
	<-p.done
}

// waitFor waits until p has seen at least n records; false after limit,
// or at once if one of the members has exited.
func waitFor(t *testing.T, p *progress, n int, limit time.Duration, members ...*member) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if p.count() >= n {
			return true
		}
		for _, m := range members {
			if m.exited() {
				t.Errorf("member %s exited (%v) while the output was incomplete", m.name, m.err)
				return false
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after %v: %d records seen, want %d", limit, p.count(), n)
	return false
}

// record is one output record: key and value.
type record struct{ key, value string }

// readCommitted reads every record of topic read_committed with franz-go,
// from the start of each partition to its last stable offset (so the test
// must have stopped every writer first; an open transaction would hide
// what follows it).
func readCommitted(t *testing.T, addr, topic string) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list the stable offsets of %s: %v", topic, err)
	}
	hwm, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		if h, ok := hwm.Lookup(topic, o.Partition); ok && h.Offset != o.Offset {
			t.Errorf("%s/%d: last stable offset %d < high watermark %d: a transaction is still open", topic, o.Partition, o.Offset, h.Offset)
		}
		if o.Offset > 0 {
			want[o.Partition] = o.Offset - 1
			parts[topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: partitions %v not read to their end in 30s", topic, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, record{string(r.Key), string(r.Value)})
			}
			if end, ok := want[r.Partition]; ok && r.Offset >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// readKcat reads every record of topic read_committed with kcat
// (librdkafka); it skips the test only when kcat is not installed.
func readKcat(t *testing.T, addr, topic string) []record {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (Debian package kcat; .ci/run installs it): " + err.Error())
	}
	out, err := exec.Command(kcat, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat -C -t %s: %v\n%s", topic, err, out)
	}
	var recs []record
	for line := range strings.SplitSeq(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("kcat printed %q", line)
		}
		recs = append(recs, record{k, v})
	}
	return recs
}

// checkCounts checks the running counts: every input id exactly once,
// with the count a one-process run gives it.
func checkCounts(t *testing.T, reader string, recs []record, e expected) {
	t.Helper()
	seen := map[string]int{}
	bad := 0
	for _, r := range recs {
		var c Count
		if err := json.Unmarshal([]byte(r.value), &c); err != nil {
			t.Fatalf("%s: counts record %q=%q: %v", reader, r.key, r.value, err)
		}
		seen[c.ID]++
		if want, ok := e.counts[c.ID]; !ok || want != c || seen[c.ID] > 1 {
			if bad++; bad <= 5 {
				t.Errorf("%s: counts record %s=%s: want %+v, seen %d times", reader, r.key, r.value, want, seen[c.ID])
			}
		}
	}
	missing := 0
	for id := range e.counts {
		if seen[id] == 0 {
			if missing++; missing <= 5 {
				t.Errorf("%s: no running count for input id %s (want %+v)", reader, id, e.counts[id])
			}
		}
	}
	if bad > 0 || missing > 0 || len(recs) != len(e.counts) {
		t.Errorf("%s: %d counts records, want %d: %d wrong or repeated, %d ids missing", reader, len(recs), len(e.counts), bad, missing)
	}
}

// checkWindows checks the window counts: every closed window of every word
// exactly once with its count, and no late message.
func checkWindows(t *testing.T, reader string, recs []record, e expected, o Options) {
	t.Helper()
	seen := map[string]map[int64]int{}
	bad := 0
	for _, r := range recs {
		var w WindowCount
		if err := json.Unmarshal([]byte(r.value), &w); err != nil {
			t.Fatalf("%s: windows record %q=%q: %v", reader, r.key, r.value, err)
		}
		if seen[r.key] == nil {
			seen[r.key] = map[int64]int{}
		}
		seen[r.key][w.Window]++
		want := e.windows[r.key][w.Window]
		if w.Late || w.Count != want || seen[r.key][w.Window] > 1 || !w.Start.Equal(time.Unix(0, 0).Add(time.Duration(w.Window)*o.Window)) {
			if bad++; bad <= 5 {
				t.Errorf("%s: windows record %s=%s: want count %d, seen %d times", reader, r.key, r.value, want, seen[r.key][w.Window])
			}
		}
	}
	missing := 0
	for _, word := range slices.Sorted(mapKeys(e.windows)) {
		for id, n := range e.windows[word] {
			if seen[word][id] == 0 {
				if missing++; missing <= 5 {
					t.Errorf("%s: no count for word %s, window %d (want %d)", reader, word, id, n)
				}
			}
		}
	}
	if bad > 0 || missing > 0 || len(recs) != e.nWin {
		t.Errorf("%s: %d windows records, want %d: %d wrong, late or repeated, %d missing", reader, len(recs), e.nWin, bad, missing)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkOutputs reads both output topics with franz-go and with kcat and
// checks them against e.
func checkOutputs(t *testing.T, addr string, o Options, e expected) {
	t.Helper()
	checkCounts(t, "franz-go", readCommitted(t, addr, o.Counts), e)
	checkWindows(t, "franz-go", readCommitted(t, addr, o.Windows), e, o)
	checkCounts(t, "kcat", readKcat(t, addr, o.Counts), e)
	checkWindows(t, "kcat", readKcat(t, addr, o.Windows), e, o)
}
