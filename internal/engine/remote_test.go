package engine

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// readyFeed is a partition fed from outside: idle, it asks to be polled in
// an hour; Ready says when items wait.
type readyFeed struct {
	clock *manualClock
	items []int
	polls int
}

func (f *readyFeed) NextBatch() ([]int, error) {
	f.polls++
	b := f.items
	f.items = nil
	return b, nil
}
func (f *readyFeed) NextAwake() time.Time { return f.clock.now.Add(time.Hour) }
func (f *readyFeed) Close() error         { return nil }
func (f *readyFeed) Ready() bool          { return len(f.items) > 0 }

// TestReadyPartitionIsReadAtOnce: a ReadyPartition whose NextAwake is far
// off is read at the next step once it is ready, not an hour later.
func TestReadyPartitionIsReadAtOnce(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	src := &readyFeed{clock: clock}
	var got []int
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(), EpochInterval: time.Hour, StartEpoch: 1})
	p := NewProgram()
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](oneDynamic{src}))
	}))
	must(t, w.AddStep(p, 1, "f.out", []Port{{0, 0}}, true, func(b *Builder) error {
		Connect(b, b.NewGate(nopNode{}), 0, nil, func(b []int) { got = append(got, b...) })
		return nil
	}))
	for range 3 {
		if _, err := w.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if src.polls != 1 {
		t.Fatalf("an idle partition was polled %d times without the clock moving, want 1", src.polls)
	}
	src.items = []int{1, 2}
	if _, err := w.Step(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{1, 2}) {
		t.Errorf("after Ready, got %v, want [1 2] at once", got)
	}
}

// TestManualEpochs: with ManualEpochs a worker closes an epoch only when
// asked and drained, and (MaxUncommitted 1) not the next one before the
// last is committed; the clock's interval does not close any.
func TestManualEpochs(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	src := &readyFeed{clock: clock}
	com := &nopCommitter{}
	drained := false
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(), Committer: com,
		EpochInterval: time.Millisecond, StartEpoch: 1, MaxUncommitted: 1, ManualEpochs: true,
		Drained: func() bool { return drained }})
	p := NewProgram()
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](oneDynamic{src}))
	}))
	must(t, w.AddStep(p, 1, "f.out", []Port{{0, 0}}, true, func(b *Builder) error {
		Connect(b, b.NewGate(nopNode{}), 0, nil, func([]int) {})
		return nil
	}))
	step := func() {
		t.Helper()
		clock.now = clock.now.Add(time.Second) // many intervals
		if _, err := w.Step(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if len(com.reported) != 0 {
		t.Fatalf("closed %v without a request", com.reported)
	}
	w.RequestClose(1)
	step()
	if len(com.reported) != 0 {
		t.Fatalf("closed %v before the inputs were drained", com.reported)
	}
	drained = true
	step()
	if !slices.Equal(com.reported, []Epoch{1}) {
		t.Fatalf("reported %v, want [1]", com.reported)
	}
	w.RequestClose(2)
	step()
	if !slices.Equal(com.reported, []Epoch{1}) {
		t.Fatalf("reported %v before epoch 1 was committed, want [1]", com.reported)
	}
	must(t, w.Committed(1))
	step()
	if !slices.Equal(com.reported, []Epoch{1, 2}) {
		t.Fatalf("reported %v, want [1 2]", com.reported)
	}
}

// fakeRemote records what is sent and hands back what a test queues.
type fakeRemote struct {
	groups int
	sent   []string // "step/input/kg/value"
	queued [][]byte
}

func (r *fakeRemote) KeyGroups() int { return r.groups }
func (r *fakeRemote) Send(step string, input, kg int, value []byte) error {
	r.sent = append(r.sent, step+"/"+strconv.Itoa(input)+"/"+strconv.Itoa(kg)+"/"+string(value))
	return nil
}
func (r *fakeRemote) Take(_ int, _ string, _ int, buf [][]byte) [][]byte {
	buf = append(buf, r.queued...)
	r.queued = nil
	return buf
}

// TestConnectKeyedWithRemote: with a Remote, a keyed input's upstream
// items go to their key group, encoded, and the input is fed from what
// the worker takes, with this worker's barriers.
func TestConnectKeyedWithRemote(t *testing.T) {
	clock := &manualClock{now: time.Unix(1000, 0)}
	src := &readyFeed{clock: clock}
	rem := &fakeRemote{groups: 4}
	com := &nopCommitter{}
	var got []int
	var barriers []Epoch
	w := NewWorker(Config{Index: 0, Workers: 1, Clock: clock, Transport: newQueueTransport(), Committer: com,
		EpochInterval: time.Hour, StartEpoch: 1, ManualEpochs: true, Remote: rem})
	p := NewProgram()
	must(t, w.AddStep(p, 0, "f.inp", nil, false, func(b *Builder) error {
		return AddDynamic(b, NewOutlet[int](b, 0), DynamicSource[int](oneDynamic{src}))
	}))
	must(t, w.AddStep(p, 1, "f.keyed", []Port{{0, 0}}, true, func(b *Builder) error {
		g := b.NewGate(barrierNode{&barriers})
		ConnectKeyed(b, g, 0, func(x int) uint64 { return uint64(x) }, func(b []int) { got = append(got, b...) },
			func(x int) ([]byte, error) { return []byte(strconv.Itoa(x)), nil },
			func(b []byte) (int, error) { return strconv.Atoi(string(b)) })
		return nil
	}))
	src.items = []int{5, 6}
	rem.queued = [][]byte{[]byte("7")}
	if _, err := w.Step(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"f.keyed/0/1/5", "f.keyed/0/2/6"}; !slices.Equal(rem.sent, want) {
		t.Errorf("sent %v, want %v", rem.sent, want)
	}
	if !slices.Equal(got, []int{7}) {
		t.Errorf("the keyed step got %v, want what was taken: [7]", got)
	}
	w.RequestClose(1)
	if _, err := w.Step(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(barriers, []Epoch{1}) || !slices.Equal(com.reported, []Epoch{1}) {
		t.Errorf("barriers %v and reported %v, want epoch 1 on both", barriers, com.reported)
	}
}

type barrierNode struct{ seen *[]Epoch }

func (n barrierNode) OnBarrier(e Epoch) { *n.seen = append(*n.seen, e) }
func (n barrierNode) OnEOF()            {}
