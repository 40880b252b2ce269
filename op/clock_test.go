package op_test

import (
	"io"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/runneltest"
)

// newManualClock is the clock the timeout tests drive: it moves only when
// the test (or a scriptSource) advances it.
func newManualClock() *runneltest.Clock {
	return runneltest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
}

// scriptStep is one step of a scriptSource: an item, or (with advance > 0)
// a move of the manual clock.
type scriptStep[T any] struct {
	item    T
	advance time.Duration
}

func item[T any](x T) scriptStep[T]                { return scriptStep[T]{item: x} }
func advance[T any](d time.Duration) scriptStep[T] { return scriptStep[T]{advance: d} }

// scriptSource plays a script on worker 0, one item per poll, like
// Bytewax's TestingSource with PAUSE items: at an advance step it moves the
// clock and returns an empty poll; the next poll (at the new time) is empty
// too and moves the clock on by a millisecond, so that the worker runs its
// wake-ups at the new time before the next item arrives a millisecond
// later. (A partition that asks to be polled again at once after an empty
// poll is made to wait the engine's 1ms cool-down, so the script moves the
// clock past it instead of relying on an immediate re-poll.)
type scriptSource[T any] struct {
	clock  *runneltest.Clock
	script []scriptStep[T]
}

func (s *scriptSource[T]) Build(bc runnel.BuildContext) (runnel.SourcePartition[T], error) {
	if bc.Worker != 0 {
		return &scriptPart[T]{}, nil
	}
	return &scriptPart[T]{clock: s.clock, script: s.script}, nil
}

type scriptPart[T any] struct {
	clock  *runneltest.Clock
	script []scriptStep[T]
	idle   int
	one    [1]T
}

func (p *scriptPart[T]) NextBatch() ([]T, error) {
	if p.idle > 0 {
		p.idle--
		p.clock.Advance(time.Millisecond)
		return nil, nil
	}
	if len(p.script) == 0 {
		return nil, io.EOF
	}
	st := p.script[0]
	p.script = p.script[1:]
	if st.advance > 0 {
		p.clock.Advance(st.advance)
		p.idle = 1
		return nil, nil
	}
	p.one[0] = st.item
	return p.one[:], nil
}

func (p *scriptPart[T]) NextAwake() time.Time {
	if p.clock == nil {
		return time.Time{}
	}
	return p.clock.Now()
}

func (p *scriptPart[T]) Close() error { return nil }
