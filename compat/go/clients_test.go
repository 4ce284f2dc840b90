package compat

import (
	"context"
	"testing"
	"time"
)

// client is one Go Kafka library reduced to the three operations the test mixes.
type client struct {
	name string
	// createTopic uses the library's own admin API.
	createTopic func(ctx context.Context, bootstrap, topic string, partitions int) error
	// produce writes recs with codec and returns them with the partition and
	// offset the broker acknowledged.
	produce func(ctx context.Context, bootstrap, topic, codec string, recs []Rec) ([]Rec, error)
	// consumeAll reads every partition of topic from its start to its end
	// offset, directly (no consumer group).
	consumeAll func(ctx context.Context, bootstrap, topic string, partitions int) ([]Rec, error)
	// nullBlind: the reader cannot tell a null value from an empty one, so its
	// reads are compared with both as empty (the other readers still check them).
	nullBlind bool
}

var clients = []client{franzGo, sarama_, kafkaGo}

// TestClients/WRITER/READER: WRITER writes a dataset with every codec, each
// client reads it back.
func TestClients(t *testing.T) {
	b := bootstrap(t)
	for _, w := range clients {
		w := w
		t.Run(w.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			topic := topicName(t, w.name)
			if err := w.createTopic(ctx, b, topic, partitions); err != nil {
				t.Fatalf("%s: create topic %s: %v", w.name, topic, err)
			}
			var acked []Rec
			t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			for i, codec := range Codecs {
				recs := makeRecords(w.name+"-"+codec, perCodec, t0.Add(time.Duration(i)*time.Minute))
				got, err := w.produce(ctx, b, topic, codec, recs)
				if err != nil {
					t.Fatalf("%s: produce with %s: %v", w.name, codec, err)
				}
				acked = append(acked, got...)
			}
			checkAcks(t, acked)
			for _, r := range clients {
				r := r
				t.Run(r.name, func(t *testing.T) {
					got, err := r.consumeAll(ctx, b, topic, partitions)
					if err != nil {
						t.Fatalf("%s reading %s's records: %v", r.name, w.name, err)
					}
					checkRead(t, acked, got, r.nullBlind)
				})
			}
		})
	}
}
