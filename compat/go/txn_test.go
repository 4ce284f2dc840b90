package compat

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactions: franz-go's transactional producer runs KAFKA_TXN_COUNT transactions
// (default 5) of ten records into KAFKA_TXN_TOPIC (created with three partitions) under
// KAFKA_TXN_ID, aborting every third. The caller checks what a read_committed consumer sees
// and the producer epoch the broker holds (with transaction.version 2 every end bumps it).
func TestTransactions(t *testing.T) {
	topic, id := os.Getenv("KAFKA_TXN_TOPIC"), os.Getenv("KAFKA_TXN_ID")
	if topic == "" || id == "" {
		t.Skip("KAFKA_TXN_TOPIC and KAFKA_TXN_ID name the topic and the transactional id")
	}
	count := 5
	if n, err := strconv.Atoi(os.Getenv("KAFKA_TXN_COUNT")); err == nil {
		count = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap(t)), kgo.TransactionalID(id),
		kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, created.Err)
	}
	for txn := 0; txn < count; txn++ {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("begin %d: %v", txn, err)
		}
		for i := 0; i < 10; i++ {
			value := []byte(fmt.Sprintf("txn-%d-%d", txn, i))
			rec := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: value}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatalf("produce in %d: %v", txn, err)
			}
		}
		commit := kgo.TransactionEndTry(txn%3 != 2)
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end %d: %v", txn, err)
		}
		t.Logf("transaction %d committed=%v", txn, bool(commit))
	}
}
