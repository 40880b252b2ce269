// Package kafka connects dataflows to Kafka (and brokers that speak its
// protocol, such as Redpanda), in and out, exactly-once. It is built on
// franz-go.
//
// NewSource reads topics by explicit partition assignment: every Kafka
// topic-partition is one Runnel partition ("topic/N") whose position, the
// next offset, is stored with each snapshot, so a resumed run continues
// exactly where the last committed epoch ended. It reads read_committed by
// default.
//
// NewSink writes Messages. It is at-least-once by default (flushed before
// each epoch commits); with ExactlyOnce it writes each epoch in Kafka
// transactions that are committed only once the epoch is durable, using
// Runnel's two-phase sink hooks (runnel.TwoPhaseSink): the transactional
// id, producer id and producer epoch are stored with the snapshot, and a
// resumed run commits them before it starts new producers (which fences
// zombies and aborts the unfinished epoch).
//
// Decode and the Serde values (JSON, String, Bytes, Avro with the
// Confluent schema-registry framing) turn messages into typed records and
// back. See docs/connectors.md for guarantees and options, and package
// kafkadev for an embedded development broker.
package kafka
