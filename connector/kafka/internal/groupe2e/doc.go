// Package groupe2e holds the real-process tests of group mode: a
// development broker process (`runnel kafka serve`) and several processes
// of examples/kafkagroup on 127.0.0.1, killed, added and removed while
// they run, with their Kafka output read back read_committed by franz-go
// and by kcat. It has no code of its own.
package groupe2e
