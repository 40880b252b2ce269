package engine

import "slices"

// Node is one step's instance on one worker, as the Gate sees it.
type Node interface {
	// OnBarrier runs once barrier e has arrived on every input channel.
	// Everything the node emits before forwarding the barriers on its
	// outlets belongs to epoch e; a stateful node snapshots here.
	OnBarrier(e Epoch)
	// OnEOF runs once every input channel has ended. The node flushes
	// what it holds and ends its outlets.
	OnEOF()
}

// replayer is the typed side of a channel: it replays events that the gate
// queued while the channel was ahead of the others.
type replayer interface {
	replay(ch int)
}

// Gate aligns barriers across the input channels of one node. A channel is
// "ahead" once it has delivered a barrier the others have not; its later
// events queue until the others catch up. The Gate is not safe for
// concurrent use: it belongs to one worker.
type Gate struct {
	w        *Worker
	step     string
	node     Node
	terminal bool

	frontier []Epoch // per channel: the last barrier it delivered
	queued   []int   // per channel: events waiting
	owner    []replayer
	aligned  Epoch // every channel has delivered barriers through this
	settling bool
	stats    *StepStats // nil when the worker does not count
}

// NewGate makes the gate for the node of the step being built.
func (b *Builder) NewGate(n Node) *Gate {
	g := &Gate{w: b.w, step: b.stepID, node: n, terminal: b.terminal, aligned: b.w.start - 1, stats: b.stepStats()}
	b.w.gates = append(b.w.gates, g)
	if g.terminal {
		b.w.terminals = append(b.w.terminals, g)
	}
	return g
}

// Aligned reports the last barrier this gate has passed to its node (EOF
// after the end).
func (g *Gate) Aligned() Epoch { return g.aligned }

// Epoch is the epoch that items the node emits now belong to: the one
// after the last aligned barrier, and EOF once the input has ended (so
// that end-of-input emissions come after every epoch, instead of
// wrapping around to 0).
func (g *Gate) Epoch() Epoch {
	if g.aligned == EOF {
		return EOF
	}
	return g.aligned + 1
}

func (g *Gate) addChannels(r replayer, n int) int {
	first := len(g.frontier)
	// Exact capacity: an exchange adds one channel per worker, so W*W
	// channels per edge in a process; appending one by one would leave up
	// to half of that capacity unused.
	g.frontier = slices.Grow(g.frontier, n)
	g.queued = slices.Grow(g.queued, n)
	g.owner = slices.Grow(g.owner, n)
	for range n {
		g.frontier = append(g.frontier, g.aligned)
		g.queued = append(g.queued, 0)
		g.owner = append(g.owner, r)
	}
	return first
}

// mustQueue says whether an event on ch must wait: the channel is ahead, or
// earlier events on it are still waiting (order within a channel is kept).
func (g *Gate) mustQueue(ch int) bool {
	return g.frontier[ch] > g.aligned || g.queued[ch] > 0
}

// pass records a barrier (or EOF) on a channel that is not ahead.
func (g *Gate) pass(ch int, e Epoch) {
	if e != EOF && e != g.frontier[ch]+1 {
		panic(g.w.stepError(g.step, "",
			errorf("barrier %d after %d on channel %d: barriers must close consecutive epochs", e, g.frontier[ch], ch), nil))
	}
	g.frontier[ch] = e
	g.settle()
}

// settle passes aligned barriers to the node and replays queued channels
// that have caught up, until nothing changes. Barriers passed while
// replaying land here again; the settling flag turns that recursion into
// iterations of this loop.
func (g *Gate) settle() {
	if g.settling {
		return
	}
	g.settling = true
	defer func() { g.settling = false }()
	for {
		progressed := false
		if m := g.minFrontier(); m > g.aligned {
			g.aligned = m
			if m == EOF {
				g.node.OnEOF()
			} else {
				g.node.OnBarrier(m)
			}
			if g.terminal {
				g.w.terminalAdvanced()
			}
			progressed = true
		}
		for ch, n := range g.queued {
			if n > 0 && g.frontier[ch] <= g.aligned {
				g.owner[ch].replay(ch)
				progressed = true
			}
		}
		if !progressed {
			return
		}
	}
}

func (g *Gate) minFrontier() Epoch {
	m := EOF
	for _, f := range g.frontier {
		m = min(m, f)
	}
	return m
}
