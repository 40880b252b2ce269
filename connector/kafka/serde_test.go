package kafka_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/kafka"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

type order struct {
	ID     int     `json:"id" avro:"id"`
	Amount float64 `json:"amount" avro:"amount"`
}

func produceValues(t *testing.T, brokers []string, topic string, values ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDecodeErrorStream: a message that does not decode goes to the error
// stream with the original message and the reason; the good ones decode.
func TestDecodeErrorStream(t *testing.T) {
	brokers := cluster(t, map[string]int32{"orders": 1})
	produceValues(t, brokers, "orders", []byte(`{"id":1,"amount":2.5}`), []byte(`{"id":"x"}`), []byte(`{"id":3,"amount":1}`))
	flow := runnel.NewDataflow("dec")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"orders"}, kafka.Tail(false)))
	good, bad := kafka.Decode("decode", msgs, kafka.String(), kafka.JSON[order]())
	goodSink, badSink := runneltest.NewSink[order](), runneltest.NewSink[kafka.DecodeError]()
	op.Output("good", op.Map("value", good, func(r kafka.Record[string, order]) order { return r.Value }), goodSink)
	op.Output("bad", bad, badSink)
	if err := runneltest.Run(flow, 1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]order{{1, 2.5}, {3, 1}}, goodSink.Items()); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	errs := badSink.Items()
	if len(errs) != 1 || errs[0].Msg.Offset != 1 || string(errs[0].Msg.Value) != `{"id":"x"}` || !strings.Contains(errs[0].Reason, "value") {
		t.Errorf("error stream = %v, want the message at offset 1 with its reason", errs)
	}
}

// TestDecodeErrorStreamUnused: an error stream nobody consumes is refused
// before the run starts.
func TestDecodeErrorStreamUnused(t *testing.T) {
	flow := runnel.NewDataflow("dec")
	msgs := op.Input("in", flow, kafka.NewSource([]string{"127.0.0.1:1"}, []string{"t"}))
	good, _ := kafka.Decode("decode", msgs, kafka.String(), kafka.JSON[order]())
	op.Output("good", good, runneltest.NewSink[kafka.Record[string, order]]())
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "dec.decode") || !strings.Contains(err.Error(), "error stream") {
		t.Errorf("err = %v, want a build error naming step dec.decode and its error stream", err)
	}
}

// TestMustDecodeStops: MustDecode stops at the first bad message, naming
// topic, partition and offset.
func TestMustDecodeStops(t *testing.T) {
	brokers := cluster(t, map[string]int32{"orders": 1})
	produceValues(t, brokers, "orders", []byte(`{"id":1,"amount":2.5}`), []byte(`not json`))
	flow := runnel.NewDataflow("dec")
	msgs := op.Input("in", flow, kafka.NewSource(brokers, []string{"orders"}, kafka.Tail(false)))
	op.Output("out", kafka.MustDecode("decode", msgs, kafka.Bytes(), kafka.JSON[order]()), runneltest.NewSink[kafka.Record[[]byte, order]]())
	err := runneltest.Run(flow, 1)
	if err == nil || !strings.Contains(err.Error(), "step dec.decode") || !strings.Contains(err.Error(), "orders/0 at offset 1") {
		t.Errorf("err = %v, want step dec.decode naming orders/0 at offset 1", err)
	}
}

// registry is a minimal Confluent schema-registry (the two calls the serde
// makes), so that the wire framing and the id lookup are exercised with
// franz-go's real sr client over HTTP.
func registry(t *testing.T) *sr.Client {
	t.Helper()
	var mu sync.Mutex
	schemas := map[int]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/subjects/"):
			var body struct{ Schema string }
			json.NewDecoder(r.Body).Decode(&body)
			id := len(schemas) + 1
			for i, s := range schemas {
				if s == body.Schema {
					id = i
				}
			}
			schemas[id] = body.Schema
			json.NewEncoder(w).Encode(map[string]any{"id": id, "schema": body.Schema, "version": id, "subject": strings.Split(r.URL.Path, "/")[2]})
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/versions"):
			id, _ := strconv.Atoi(strings.Split(r.URL.Path, "/")[3])
			json.NewEncoder(w).Encode([]map[string]any{{"subject": "orders-value", "version": id}})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/"):
			id, _ := strconv.Atoi(strings.Split(r.URL.Path, "/")[3])
			s, ok := schemas[id]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				json.NewEncoder(w).Encode(map[string]any{"error_code": 40403, "message": "Schema not found"})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"schema": s})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

const orderV1 = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}`
const orderV2 = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double","default":0}]}`

// TestAvroSchemaRegistry: values are framed with the schema id; a record
// written with the older schema decodes into the newer one with the
// default; a value without the framing is a decode error.
func TestAvroSchemaRegistry(t *testing.T) {
	ctx := context.Background()
	reg := registry(t)
	v1, err := kafka.Avro[struct {
		ID int64 `avro:"id"`
	}](ctx, reg, "orders-value", orderV1)
	if err != nil {
		t.Fatal(err)
	}
	old, err := v1.Encode("orders", struct {
		ID int64 `avro:"id"`
	}{7})
	if err != nil {
		t.Fatal(err)
	}
	if old[0] != 0 || len(old) < 5 {
		t.Fatalf("encoded %x, want the Confluent framing (magic 0, 4-byte id)", old)
	}
	v2, err := kafka.Avro[order](ctx, reg, "orders-value", orderV2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v2.Decode("orders", old)
	if err != nil || got != (order{ID: 7}) {
		t.Errorf("decode v1 record as v2 = %v, %v; want {7 0}", got, err)
	}
	b, _ := v2.Encode("orders", order{ID: 8, Amount: 1.5})
	if got, err := v2.Decode("orders", b); err != nil || got != (order{8, 1.5}) {
		t.Errorf("round trip = %v, %v", got, err)
	}
	if _, err := v2.Decode("orders", []byte("plain")); err == nil {
		t.Error("a value without the framing decoded")
	}
}
