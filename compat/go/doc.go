// Package compat drives three Go Kafka clients, unchanged, against a broker:
// franz-go, sarama and kafka-go. Everything is in the tests:
//
//	KAFKA_BOOTSTRAP=127.0.0.1:9092 go test -run 'TestClients/franz-go' -v .
//
// compat/tests/test_go.py builds the test binary once and runs it per writer
// against the broker under test. Each writer creates a 4-partition topic with
// its own admin API and writes keyed records with headers, 100 with each of
// gzip, snappy, lz4 and zstd; then every client (itself included) reads every
// partition back directly, without a consumer group, and the records must be
// exactly the ones the writer had acknowledged.
//
// TestGroups/CLIENT reads a dataset back through each client's consumer group
// (franz-go kgo.ConsumerGroup, sarama ConsumerGroup fed by its AsyncProducer,
// kafka-go Reader with GroupID); kadm then lists the topic and the group and
// finds its offsets committed to each partition's end.
package compat
