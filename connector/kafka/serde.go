package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
)

// Serde turns values of T into message keys or values and back. The topic
// is passed for serdes whose schema depends on it (schema-registry
// subjects).
type Serde[T any] interface {
	Encode(topic string, v T) ([]byte, error)
	Decode(topic string, b []byte) (T, error)
}

// JSON encodes T with encoding/json. A message that is not valid JSON for T
// (a string where T has a number, truncated input) fails to decode; fields
// T does not have are ignored, so producers may add fields.
func JSON[T any]() Serde[T] { return jsonSerde[T]{} }

type jsonSerde[T any] struct{}

func (jsonSerde[T]) Encode(_ string, v T) ([]byte, error) { return json.Marshal(v) }
func (jsonSerde[T]) Decode(_ string, b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// String uses the bytes as text, unchanged (no UTF-8 check).
func String() Serde[string] { return stringSerde{} }

type stringSerde struct{}

func (stringSerde) Encode(_ string, v string) ([]byte, error) { return []byte(v), nil }
func (stringSerde) Decode(_ string, b []byte) (string, error) { return string(b), nil }

// Bytes passes the bytes through.
func Bytes() Serde[[]byte] { return bytesSerde{} }

type bytesSerde struct{}

func (bytesSerde) Encode(_ string, v []byte) ([]byte, error) { return v, nil }
func (bytesSerde) Decode(_ string, b []byte) ([]byte, error) { return b, nil }

// Avro encodes T as Avro with the Confluent schema-registry wire framing
// (a zero byte, the 4-byte schema id, then the Avro binary). The schema is
// registered under subject when the serde is made (as the Java serializer
// does with auto.register.schemas), and values are encoded with it.
// Decoding looks up each message's writer schema by its id in the registry
// (cached) and resolves it to schema, so records written with an older or
// newer compatible schema decode into T. Avro is github.com/twmb/avro
// (measured against hamba/avro/v2: see bench/README.md).
func Avro[T any](ctx context.Context, registry *sr.Client, subject, schema string) (Serde[T], error) {
	reader, err := avro.Parse(schema)
	if err != nil {
		return nil, fmt.Errorf("avro schema for subject %q: %w", subject, err)
	}
	id, err := registry.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("register the avro schema under subject %q: %w", subject, err)
	}
	return &avroSerde[T]{registry: registry, schema: reader, id: id, writers: map[int]*avro.Schema{id: reader}}, nil
}

type avroSerde[T any] struct {
	registry *sr.Client
	schema   *avro.Schema
	id       int
	header   sr.ConfluentHeader

	mu      sync.Mutex
	writers map[int]*avro.Schema // resolved to the reader schema, by id
}

func (s *avroSerde[T]) Encode(_ string, v T) ([]byte, error) {
	b, err := s.header.AppendEncode(make([]byte, 0, 64), s.id, nil)
	if err != nil {
		return nil, err
	}
	return s.schema.AppendEncode(b, &v)
}

func (s *avroSerde[T]) Decode(_ string, b []byte) (T, error) {
	var v T
	id, payload, err := s.header.DecodeID(b)
	if err != nil {
		return v, fmt.Errorf("not in the schema-registry framing: %w", err)
	}
	w, err := s.writer(id)
	if err != nil {
		return v, err
	}
	rest, err := w.Decode(payload, &v)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%d bytes left after the record", len(rest))
	}
	return v, err
}

func (s *avroSerde[T]) writer(id int) (*avro.Schema, error) {
	s.mu.Lock()
	w, ok := s.writers[id]
	s.mu.Unlock()
	if ok {
		return w, nil
	}
	ss, err := s.registry.SchemaByID(context.Background(), id)
	if err != nil {
		return nil, fmt.Errorf("look up writer schema %d: %w", id, err)
	}
	ws, err := avro.Parse(ss.Schema)
	if err != nil {
		return nil, fmt.Errorf("writer schema %d: %w", id, err)
	}
	if w, err = avro.Resolve(ws, s.schema); err != nil {
		return nil, fmt.Errorf("writer schema %d cannot be read as the reader schema: %w", id, err)
	}
	s.mu.Lock()
	s.writers[id] = w
	s.mu.Unlock()
	return w, nil
}
