package runner

import (
	"sync"
	"sync/atomic"

	"github.com/runnel-dev/runnel/internal/engine"
)

// mailbox is one worker's queue of messages from other workers. Senders
// append under the lock and never block; the owner takes the whole queue at
// once, so there is one lock round-trip per batch of messages, not per item.
type mailbox struct {
	mu   sync.Mutex
	msgs []engine.Message
	wake chan struct{} // capacity 1: "look again"
}

func (m *mailbox) take(buf []engine.Message) []engine.Message {
	m.mu.Lock()
	msgs := m.msgs
	m.msgs = buf[:0]
	m.mu.Unlock()
	return msgs
}

func (m *mailbox) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// transport connects the workers of one process. Flow control counts, per
// sending worker, the items receivers still hold.
type transport struct {
	boxes       []*mailbox
	outstanding []atomic.Int64
	limit       int64
}

func newTransport(workers int, limit int64) *transport {
	t := &transport{boxes: make([]*mailbox, workers), outstanding: make([]atomic.Int64, workers), limit: limit}
	for i := range t.boxes {
		t.boxes[i] = &mailbox{wake: make(chan struct{}, 1)}
	}
	return t
}

func (t *transport) Send(to int, m engine.Message) {
	if m.Len > 0 {
		t.outstanding[m.From].Add(int64(m.Len))
	}
	b := t.boxes[to]
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
	b.signal()
}

func (t *transport) Release(from int, n int) {
	if n == 0 {
		return
	}
	v := t.outstanding[from].Add(-int64(n))
	if v < t.limit && v+int64(n) >= t.limit {
		t.boxes[from].signal() // the sender may be waiting for credit
	}
}

func (t *transport) Hold(w int, n int) { t.outstanding[w].Add(int64(n)) }

func (t *transport) Outstanding(w int) int64 { return t.outstanding[w].Load() }
