package bench

import (
	"testing"

	hamba "github.com/hamba/avro/v2"
	twmb "github.com/twmb/avro"
)

// BenchmarkAvro measures the two pure-Go Avro libraries the Kafka
// connector could use (github.com/hamba/avro/v2 and github.com/twmb/avro)
// on the same record, encode and decode, so the pick in connector/kafka is
// a measurement (see README.md).
func BenchmarkAvro(b *testing.B) {
	const schema = `{"type":"record","name":"Order","fields":[
		{"name":"id","type":"long"},{"name":"customer","type":"string"},
		{"name":"amount","type":"double"},{"name":"tags","type":{"type":"array","items":"string"}},
		{"name":"note","type":["null","string"],"default":null}]}`
	type order struct {
		ID       int64    `avro:"id"`
		Customer string   `avro:"customer"`
		Amount   float64  `avro:"amount"`
		Tags     []string `avro:"tags"`
		Note     *string  `avro:"note"`
	}
	note := "leave at the door"
	v := order{ID: 123456, Customer: "customer-0042", Amount: 99.5, Tags: []string{"a", "bb", "ccc"}, Note: &note}
	hs := hamba.MustParse(schema)
	ts := twmb.MustParse(schema)
	hb, err := hamba.Marshal(hs, v)
	if err != nil {
		b.Fatal(err)
	}
	tb, err := ts.Encode(&v)
	if err != nil {
		b.Fatal(err)
	}
	// The bytes differ (hamba writes array blocks with their byte size,
	// which Avro allows), so check that each reads the other's.
	var x, y order
	if err := hamba.Unmarshal(hs, tb, &x); err != nil || x.Customer != v.Customer || *x.Note != note {
		b.Fatalf("hamba reads twmb's bytes: %v %+v", err, x)
	}
	if _, err := ts.Decode(hb, &y); err != nil || y.Customer != v.Customer || *y.Note != note {
		b.Fatalf("twmb reads hamba's bytes: %v %+v", err, y)
	}
	b.Run("encode/hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := hamba.Marshal(hs, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/twmb", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			var err error
			if buf, err = ts.AppendEncode(buf[:0], &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o order
			if err := hamba.Unmarshal(hs, hb, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/twmb", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var o order
			if _, err := ts.Decode(tb, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
}
