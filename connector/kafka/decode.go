package kafka

import (
	"fmt"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
	"github.com/runnel-dev/runnel/internal/plan"
	"github.com/runnel-dev/runnel/internal/pubapi"
)

// Record is a decoded message: its key and value, and the message it came
// from (topic, partition, offset, headers, timestamp; Key and Value there
// are the raw bytes).
type Record[K, V any] struct {
	Key   K
	Value V
	Msg   Message
}

// DecodeError is a message that did not decode, with the reason.
type DecodeError struct {
	Msg    Message
	Reason string
}

// String names the message's topic, partition and offset and the reason.
func (e DecodeError) String() string {
	return fmt.Sprintf("%s/%d@%d: %s", e.Msg.Topic, e.Msg.Partition, e.Msg.Offset, e.Reason)
}

// Decode turns messages into records with a key and a value serde. A
// message that fails to decode goes to errs with the original message and
// the reason. errs must be consumed (an output, a dead-letter topic, or
// op.Raises): a flow that leaves it unused is refused when it is built, so
// that no bad record is dropped silently. Use MustDecode to stop the run
// at the first bad record instead.
func Decode[K, V any](stepID string, up runnel.Stream[Message], key Serde[K], value Serde[V]) (ok runnel.Stream[Record[K, V]], errs runnel.Stream[DecodeError]) {
	sc := pubapi.Scope(up)
	if sc.Flow == nil {
		return ok, errs
	}
	st := &plan.Step{Kind: "kafka_decode", Outs: 2}
	st.Build = func(b *engine.Builder) error {
		n := &decodeNode[K, V]{key: key, value: value}
		n.ok = engine.NewOutlet[Record[K, V]](b, 0)
		n.errs = engine.NewOutlet[DecodeError](b, 1)
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	if !plan.Add(sc, stepID, st, pubapi.Stream(up)) {
		return pubapi.Broken[Record[K, V]](sc.Flow), pubapi.Broken[DecodeError](sc.Flow)
	}
	ok, errs = pubapi.Out[Record[K, V]](sc.Flow, 0), pubapi.Out[DecodeError](sc.Flow, 1)
	plan.Require(pubapi.Stream(errs), "the error stream of kafka.Decode is not consumed; write it to an output (a dead-letter topic) or use kafka.MustDecode to stop at the first bad record")
	return ok, errs
}

// MustDecode is Decode that stops the run at the first message that does
// not decode, naming its topic, partition and offset and the reason.
func MustDecode[K, V any](stepID string, up runnel.Stream[Message], key Serde[K], value Serde[V]) runnel.Stream[Record[K, V]] {
	sc := pubapi.Scope(up)
	if sc.Flow == nil {
		return runnel.Stream[Record[K, V]]{}
	}
	st := &plan.Step{Kind: "kafka_decode", Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &decodeNode[K, V]{key: key, value: value, w: b.Worker(), step: b.StepID()}
		n.ok = engine.NewOutlet[Record[K, V]](b, 0)
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	if !plan.Add(sc, stepID, st, pubapi.Stream(up)) {
		return pubapi.Broken[Record[K, V]](sc.Flow)
	}
	return pubapi.Out[Record[K, V]](sc.Flow, 0)
}

type decodeNode[K, V any] struct {
	key   Serde[K]
	value Serde[V]
	ok    *engine.Outlet[Record[K, V]]
	errs  *engine.Outlet[DecodeError] // nil: stop at the first error
	w     *engine.Worker
	step  string
	obuf  []Record[K, V]
	ebuf  []DecodeError
}

func (n *decodeNode[K, V]) decode(m Message) (Record[K, V], error) {
	r := Record[K, V]{Msg: m}
	var err error
	if m.Key != nil {
		if r.Key, err = n.key.Decode(m.Topic, m.Key); err != nil {
			return r, fmt.Errorf("key: %w", err)
		}
	}
	if r.Value, err = n.value.Decode(m.Topic, m.Value); err != nil {
		return r, fmt.Errorf("value: %w", err)
	}
	return r, nil
}

func (n *decodeNode[K, V]) handle(batch []Message) {
	for _, m := range batch {
		r, err := n.decode(m)
		switch {
		case err == nil:
			n.obuf = append(n.obuf, r)
		case n.errs == nil:
			n.w.Fail(n.step, "", fmt.Errorf("message %s/%d at offset %d does not decode: %w", m.Topic, m.Partition, m.Offset, err))
		default:
			n.ebuf = append(n.ebuf, DecodeError{Msg: m, Reason: err.Error()})
		}
	}
	n.ok.Push(n.obuf)
	clear(n.obuf)
	n.obuf = n.obuf[:0]
	if n.errs != nil {
		n.errs.Push(n.ebuf)
		clear(n.ebuf)
		n.ebuf = n.ebuf[:0]
	}
}

func (n *decodeNode[K, V]) OnBarrier(e engine.Epoch) {
	n.ok.Barrier(e)
	if n.errs != nil {
		n.errs.Barrier(e)
	}
}

func (n *decodeNode[K, V]) OnEOF() {
	n.ok.EOF()
	if n.errs != nil {
		n.errs.EOF()
	}
}

// Encode turns keyed items into messages for topic (empty: the sink's
// default topic) with a key and a value serde. A value that fails to
// encode stops the run, naming the step and the key.
func Encode[K runnel.Key, V any](stepID string, up runnel.Stream[runnel.KV[K, V]], topic string, key Serde[K], value Serde[V]) runnel.Stream[Message] {
	sc := pubapi.Scope(up)
	if sc.Flow == nil {
		return runnel.Stream[Message]{}
	}
	st := &plan.Step{Kind: "kafka_encode", Outs: 1}
	st.Build = func(b *engine.Builder) error {
		n := &encodeNode[K, V]{topic: topic, key: key, value: value, w: b.Worker(), step: b.StepID()}
		n.out = engine.NewOutlet[Message](b, 0)
		engine.Connect(b, b.NewGate(n), 0, nil, n.handle)
		return nil
	}
	if !plan.Add(sc, stepID, st, pubapi.Stream(up)) {
		return pubapi.Broken[Message](sc.Flow)
	}
	return pubapi.Out[Message](sc.Flow, 0)
}

type encodeNode[K runnel.Key, V any] struct {
	topic string
	key   Serde[K]
	value Serde[V]
	out   *engine.Outlet[Message]
	w     *engine.Worker
	step  string
	buf   []Message
}

func (n *encodeNode[K, V]) handle(batch []runnel.KV[K, V]) {
	for _, kv := range batch {
		k, err := n.key.Encode(n.topic, kv.Key)
		if err != nil {
			n.w.Fail(n.step, fmt.Sprint(kv.Key), fmt.Errorf("encode key: %w", err))
		}
		v, err := n.value.Encode(n.topic, kv.Value)
		if err != nil {
			n.w.Fail(n.step, fmt.Sprint(kv.Key), fmt.Errorf("encode value: %w", err))
		}
		n.buf = append(n.buf, Message{Topic: n.topic, Key: k, Value: v})
	}
	n.out.Push(n.buf)
	clear(n.buf)
	n.buf = n.buf[:0]
}

func (n *encodeNode[K, V]) OnBarrier(e engine.Epoch) { n.out.Barrier(e) }
func (n *encodeNode[K, V]) OnEOF()                   { n.out.EOF() }
