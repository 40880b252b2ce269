package engine

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// Scripted tests, in the style of etcd raft's interaction tests: each file
// in testdata/ is a script of commands that drive workers step by step
// (the test decides when each worker steps, when the clock moves and when
// messages arrive), each followed by every event it caused. Run
//
//	go test ./internal/engine -run TestScripts -rewrite
//
// to rewrite the expected output after a deliberate change, and read the
// diff.
//
// A file is a sequence of directives separated by blank lines; lines
// starting with # between directives are comments. A directive is one
// command line, a line "----", and the expected output (no blank lines).

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

type directive struct {
	line     int      // of the command, 1-based
	cmd      string   // first word
	args     []string // the other words
	want     []string // expected output lines
	from, to int      // line range (0-based) of the expected output
}

func parseScript(t *testing.T, path string) (lines []string, ds []directive) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		d := directive{line: i + 1, cmd: f[0], args: f[1:]}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: %q is not followed by a ---- line", path, i+1, l)
		}
		i += 2
		d.from = i
		for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
			d.want = append(d.want, lines[i])
			i++
		}
		d.to = i
		ds = append(ds, d)
	}
	return lines, ds
}

// runScript runs every directive of the file at path with run, which
// returns the directive's output, and compares it with the expected output
// (or, with -rewrite, writes it into the file).
func runScript(t *testing.T, path string, run func(d directive) []string) {
	t.Helper()
	lines, ds := parseScript(t, path)
	var out []string
	next := 0
	for _, d := range ds {
		got := run(d)
		if len(got) == 0 {
			got = []string{"ok"}
		}
		if *rewrite {
			out = append(out, lines[next:d.from]...)
			out = append(out, got...)
			next = d.to
			continue
		}
		if diff := gocmp.Diff(d.want, got); diff != "" {
			t.Errorf("%s:%d: %s %s: output (-want +got):\n%s", path, d.line, d.cmd, strings.Join(d.args, " "), diff)
		}
	}
	if *rewrite {
		out = append(out, lines[next:]...)
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScripts runs every script in testdata.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			s := &script{t: t}
			runScript(t, f, s.run)
		})
	}
}

// script is the environment the commands drive: W workers running the
// flow
//
//	a, b (inputs, one feed per worker each) -> agg (keyed: x mod W owns
//	x; counts each value, can be woken by timers) -> out (terminal)
//
// with a manual clock, a transport that holds messages until "deliver",
// and a committer that records what it is told. Every event is logged.
//
// Commands (w=N picks one worker; without it, all of them):
//
//	init workers=N [interval=10s] [maxout=N] [snapshots=true] [idle=D]
//	feed w=N [in=a|b] [x ...] [eof]   queue a batch (eof: it is the last)
//	step [w=N]                        move the clock 1ms, Step
//	deliver [w=N]                     hand over the messages sent to it
//	stabilize                         step and deliver until nothing moves
//	tick D                            move the clock
//	timer w=N at=D                    wake agg at start+D
//	pause [w=N] / stop-at e=E [w=N]   the stop protocol
//	status                            epoch, frontier, deadline, credit
type script struct {
	t       *testing.T
	log     []string
	start   time.Time
	clock   *manualClock
	tr      *scriptTransport
	workers []*Worker
	feeds   []map[string]*scriptFeed // per worker, by input name
	aggs    []*aggNode
	idle    time.Duration // how long an empty feed asks not to be polled (0: the engine's cool-down)
}

func (s *script) logf(format string, a ...any) { s.log = append(s.log, fmt.Sprintf(format, a...)) }

func (s *script) since(t time.Time) string { return "+" + t.Sub(s.start).String() }

// run executes one directive and returns what it logged.
func (s *script) run(d directive) []string {
	s.log = nil
	args := map[string]string{}
	var vals []string
	for _, a := range d.args {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		} else {
			vals = append(vals, a)
		}
	}
	num := func(name string, def int) int {
		v, ok := args[name]
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			s.t.Fatalf("line %d: %s=%q: %v", d.line, name, v, err)
		}
		return n
	}
	dur := func(v string) time.Duration {
		x, err := time.ParseDuration(v)
		if err != nil {
			s.t.Fatalf("line %d: %q: %v", d.line, v, err)
		}
		return x
	}
	// which is the workers a command applies to: w=N, or all of them.
	which := func() []*Worker {
		if _, ok := args["w"]; !ok {
			return s.workers
		}
		return []*Worker{s.workers[num("w", 0)]}
	}
	switch d.cmd {
	case "init":
		s.idle = dur(cmp.Or(args["idle"], "0s"))
		s.init(num("workers", 1), dur(cmp.Or(args["interval"], "10s")), int64(num("maxout", 0)), args["snapshots"] == "true")
	case "feed":
		f := s.feeds[num("w", 0)][cmp.Or(args["in"], "a")]
		var batch []int
		for _, v := range vals {
			if v == "eof" {
				f.ended = true
				continue
			}
			x, err := strconv.Atoi(v)
			if err != nil {
				s.t.Fatalf("line %d: %v", d.line, err)
			}
			batch = append(batch, x)
		}
		if len(batch) > 0 || !f.ended {
			f.queued = append(f.queued, batch)
		}
	case "tick":
		s.clock.now = s.clock.now.Add(dur(vals[0]))
		s.logf("now %s", s.since(s.clock.now))
	case "step":
		// Each step moves the clock by 1ms, past the cool-down that
		// follows an empty poll.
		s.clock.now = s.clock.now.Add(time.Millisecond)
		for _, w := range which() {
			p, err := w.Step()
			if err != nil {
				s.logf("w%d step: error: %v", w.Index, err)
				continue
			}
			s.logf("w%d step: progress=%v", w.Index, p)
		}
	case "deliver":
		for _, w := range which() {
			s.deliver(w)
		}
	case "stabilize":
		// Step and deliver on every worker until nothing moves.
		for range 100 {
			s.clock.now = s.clock.now.Add(time.Millisecond)
			moved := false
			for _, w := range s.workers {
				p, err := w.Step()
				if err != nil {
					s.logf("w%d step: error: %v", w.Index, err)
					return s.log
				}
				moved = moved || p
			}
			for _, w := range s.workers {
				moved = s.deliver(w) || moved
			}
			if !moved {
				return s.log
			}
		}
		s.t.Fatalf("line %d: stabilize did not settle", d.line)
	case "timer":
		a := s.aggs[num("w", 0)]
		a.timers = append(a.timers, s.start.Add(dur(args["at"])))
		slices.SortFunc(a.timers, func(x, y time.Time) int { return x.Compare(y) })
	case "pause":
		for _, w := range which() {
			w.Pause()
		}
	case "stop-at":
		for _, w := range which() {
			w.StopAt(Epoch(num("e", 0)))
		}
	case "status":
		for _, w := range s.workers {
			dl := "none"
			if t, ok := w.Deadline(); ok {
				dl = s.since(t)
				if !t.After(s.clock.now) {
					dl = "now"
				}
			}
			s.logf("w%d: epoch=%d reported=%d stopped=%v done=%v deadline=%s outstanding=%d",
				w.Index, w.Epoch(), w.reported, w.Stopped(), w.Done(), dl, s.tr.Outstanding(w.Index))
		}
	default:
		s.t.Fatalf("line %d: unknown command %q", d.line, d.cmd)
	}
	return s.log
}

func (s *script) deliver(w *Worker) bool {
	msgs := s.tr.queues[w.Index]
	s.tr.queues[w.Index] = nil
	if len(msgs) == 0 {
		return false
	}
	if err := w.Deliver(msgs); err != nil {
		s.logf("w%d deliver: error: %v", w.Index, err)
	}
	return true
}

func (s *script) init(workers int, interval time.Duration, maxOut int64, snapshots bool) {
	s.start = time.Unix(1000, 0)
	s.clock = &manualClock{now: s.start}
	s.tr = &scriptTransport{queueTransport: newQueueTransport(), s: s}
	s.workers, s.feeds, s.aggs = nil, nil, nil
	com := &scriptCommitter{s: s}
	for i := range workers {
		w := NewWorker(Config{Index: i, Workers: workers, Clock: s.clock, Transport: s.tr, Committer: com,
			EpochInterval: interval, StartEpoch: 1, MaxOutstanding: maxOut, Snapshots: snapshots})
		p := NewProgram()
		fs := map[string]*scriptFeed{}
		for idx, name := range []string{"a", "b"} {
			f := &scriptFeed{s: s, name: fmt.Sprintf("w%d %s", i, name)}
			fs[name] = f
			must(s.t, w.AddStep(p, idx, "f."+name, nil, false, func(b *Builder) error {
				return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](scriptFeeds{i: f}))
			}))
		}
		agg := &aggNode{s: s, w: w, counts: map[int]int{}}
		must(s.t, w.AddStep(p, 2, "f.agg", []Port{{0, 0}, {1, 0}}, false, func(b *Builder) error {
			agg.out = NewOutlet[int](b, 0)
			agg.gate = b.NewGate(agg)
			route := func(x int) int { return ((x % workers) + workers) % workers }
			Connect(b, agg.gate, 0, route, agg.handle)
			Connect(b, agg.gate, 1, route, agg.handle)
			b.AddWaker(agg)
			return nil
		}))
		out := &outNode{s: s, w: w}
		must(s.t, w.AddStep(p, 3, "f.out", []Port{{2, 0}}, true, func(b *Builder) error {
			out.gate = b.NewGate(out)
			Connect(b, out.gate, 0, nil, out.handle)
			return nil
		}))
		s.workers = append(s.workers, w)
		s.feeds = append(s.feeds, fs)
		s.aggs = append(s.aggs, agg)
	}
}

// scriptFeed is a partition returning the batches a script queued; with
// ended set, its last batch comes with io.EOF.
type scriptFeed struct {
	s      *script
	name   string
	queued [][]int
	ended  bool
	over   bool
	awake  time.Time
}

func (f *scriptFeed) NextBatch() ([]int, error) {
	if f.over {
		f.s.logf("%s: read after the end", f.name)
	}
	if len(f.queued) == 0 {
		if f.ended {
			f.over = true
			f.s.logf("%s: end", f.name)
			return nil, io.EOF
		}
		f.awake = time.Time{}
		if f.s.idle > 0 {
			f.awake = f.s.clock.now.Add(f.s.idle)
		}
		return nil, nil
	}
	b := f.queued[0]
	f.queued = f.queued[1:]
	f.awake = time.Time{}
	if len(f.queued) == 0 && f.ended {
		f.over = true
		f.s.logf("%s: read %v with the end", f.name, b)
		return b, io.EOF
	}
	f.s.logf("%s: read %v", f.name, b)
	return b, nil
}
func (f *scriptFeed) NextAwake() time.Time { return f.awake }
func (f *scriptFeed) Close() error         { return nil }

type scriptFeeds map[int]*scriptFeed

func (fs scriptFeeds) Build(bc BuildContext) (SourcePartition[int], error) {
	return fs[bc.Worker], nil
}

// aggNode counts each value it owns; at a barrier it snapshots the values
// whose count changed; at the end it emits each value's count, times 1000;
// a timer emits minus its offset in seconds.
type aggNode struct {
	s       *script
	w       *Worker
	gate    *Gate
	out     *Outlet[int]
	counts  map[int]int
	changed []int
	timers  []time.Time
}

func (n *aggNode) handle(batch []int) {
	n.s.logf("w%d agg: handle %v in epoch %d", n.w.Index, batch, n.gate.Epoch())
	for _, x := range batch {
		n.counts[x]++
		n.changed = append(n.changed, x)
	}
	n.out.Push(batch)
}

func (n *aggNode) OnBarrier(e Epoch) {
	if n.w.snapshots {
		rows, _, err := ChangedRows("f.agg", n.changed, true, strconv.Itoa, func(x int) ([]byte, bool, error) {
			return []byte(strconv.Itoa(n.counts[x])), true, nil
		})
		if err != nil {
			panic(err)
		}
		n.changed = n.changed[:0]
		n.w.Record(e, rows...)
	}
	n.s.logf("w%d agg: barrier %d", n.w.Index, e)
	n.out.Barrier(e)
}

func (n *aggNode) OnEOF() {
	var flush []int
	for _, x := range slices.Sorted(func(yield func(int) bool) {
		for k := range n.counts {
			if !yield(k) {
				return
			}
		}
	}) {
		flush = append(flush, x*1000+n.counts[x])
	}
	n.s.logf("w%d agg: eof in epoch %d, flushes %v", n.w.Index, n.gate.Epoch(), flush)
	n.out.Push(flush)
	n.out.EOF()
}

func (n *aggNode) NextWake() (time.Time, bool) {
	if len(n.timers) == 0 || n.gate.Aligned() == EOF {
		return time.Time{}, false
	}
	return n.timers[0], true
}

func (n *aggNode) Wake(now time.Time) {
	t := n.timers[0]
	n.timers = n.timers[1:]
	v := -int(t.Sub(n.s.start) / time.Second)
	n.s.logf("w%d agg: timer %s at %s emits %d in epoch %d", n.w.Index, n.s.since(t), n.s.since(now), v, n.gate.Epoch())
	n.out.Push([]int{v})
}

// outNode is the terminal step: it logs what reaches it.
type outNode struct {
	s    *script
	w    *Worker
	gate *Gate
}

func (n *outNode) handle(batch []int) {
	n.s.logf("w%d out: %v in epoch %d", n.w.Index, batch, n.gate.Epoch())
}
func (n *outNode) OnBarrier(e Epoch) { n.s.logf("w%d out: barrier %d", n.w.Index, e) }
func (n *outNode) OnEOF()            { n.s.logf("w%d out: eof", n.w.Index) }

// scriptTransport logs what crosses workers and holds it for "deliver".
type scriptTransport struct {
	*queueTransport
	s *script
}

func (t *scriptTransport) Send(to int, m Message) {
	switch m.Kind {
	case MsgData:
		t.s.logf("w%d -> w%d edge %d: %v", m.From, to, m.Edge, m.Batch)
	case MsgBarrier:
		t.s.logf("w%d -> w%d edge %d: barrier %d", m.From, to, m.Edge, m.Epoch)
	case MsgEOF:
		t.s.logf("w%d -> w%d edge %d: eof", m.From, to, m.Edge)
	}
	t.queueTransport.Send(to, m)
}

// scriptCommitter logs what workers report.
type scriptCommitter struct{ s *script }

func (c *scriptCommitter) EpochDone(w int, e Epoch, rows []Row) {
	var rs []string
	for _, r := range rows {
		rs = append(rs, r.Key+"="+string(r.Value))
	}
	slices.Sort(rs)
	if len(rs) > 0 {
		c.s.logf("w%d committer: epoch %d done, rows %v", w, e, rs)
		return
	}
	c.s.logf("w%d committer: epoch %d done", w, e)
}

func (c *scriptCommitter) Done(w int, last Epoch) {
	c.s.logf("w%d committer: ended after epoch %d", w, last)
}
