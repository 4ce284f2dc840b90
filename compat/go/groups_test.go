package compat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupRecords records read by each client's consumer group.
const groupRecords = 200

// TestGroups/CLIENT: CLIENT writes a dataset to a 4-partition topic and reads it
// back through its own consumer group (franz-go kgo.ConsumerGroup, sarama
// ConsumerGroup, kafka-go Reader with GroupID): every record, in offset order
// per partition, and the group's committed offsets end at the log end.
func TestGroups(t *testing.T) {
	b := bootstrap(t)
	for _, c := range []struct {
		name      string
		produce   func(ctx context.Context, b, topic string, recs []Rec) ([]Rec, error)
		consume   func(ctx context.Context, b, topic, group string, want int) ([]Rec, error)
		nullBlind bool
	}{
		{"franz-go", func(ctx context.Context, b, topic string, recs []Rec) ([]Rec, error) {
			return franzGo.produce(ctx, b, topic, "lz4", recs)
		}, franzGroup, false},
		{"sarama", saramaAsyncProduce, saramaGroup, false},
		{"kafka-go", func(ctx context.Context, b, topic string, recs []Rec) ([]Rec, error) {
			return kafkaGo.produce(ctx, b, topic, "zstd", recs)
		}, kafkaGoGroup, true},
	} {
		c := c
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			topic, group := topicName(t, c.name+"-grp"), topicName(t, c.name+"-g")
			if err := franzGo.createTopic(ctx, b, topic, partitions); err != nil {
				t.Fatalf("create topic %s: %v", topic, err)
			}
			acked, err := c.produce(ctx, b, topic, makeRecords("group-"+c.name, groupRecords, time.Now().Add(-time.Minute).Truncate(time.Millisecond)))
			if err != nil {
				t.Fatalf("%s: produce: %v", c.name, err)
			}
			checkAcks(t, acked)
			got, err := c.consume(ctx, b, topic, group, len(acked))
			if err != nil {
				t.Fatalf("%s: consume in group %s: %v", c.name, group, err)
			}
			checkRead(t, acked, got, c.nullBlind)
			checkCommitted(ctx, t, b, topic, group, acked)
		})
	}
}

// checkCommitted: kadm lists the topic and the group, and the group's
// committed offset of each partition is that partition's end.
func checkCommitted(ctx context.Context, t *testing.T, b, topic, group string, acked []Rec) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("kadm ListTopics: %v", err)
	}
	if _, ok := topics[topic]; !ok {
		t.Errorf("kadm ListTopics lacks %s", topic)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("kadm ListGroups: %v", err)
	}
	if _, ok := groups[group]; !ok {
		t.Errorf("kadm ListGroups lacks %s: %v", group, groups.Groups())
	}
	end := map[int32]int64{}
	for _, r := range acked {
		if r.Offset+1 > end[r.Partition] {
			end[r.Partition] = r.Offset + 1
		}
	}
	// Commits can land just after the reader returns (kafka-go, sarama's auto-commit on close).
	deadline := time.Now().Add(waitFor)
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("kadm FetchOffsets %s: %v", group, err)
		}
		var wrong []string
		for p, e := range end {
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil || o.At != e {
				wrong = append(wrong, fmt.Sprintf("partition %d committed %d (%v), end %d", p, o.At, o.Err, e))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("group %s: %v", group, wrong)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func franzGroup(ctx context.Context, b, topic, group string, want int) ([]Rec, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	var got []Rec
	for len(got) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return got, fmt.Errorf("read %d of %d records: %w", len(got), want, ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return got, fmt.Errorf("fetch: %v", errs[0].Err)
		}
		fetches.EachRecord(func(kr *kgo.Record) {
			r := Rec{Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value, Time: kr.Timestamp}
			for _, h := range kr.Headers {
				r.Headers = append(r.Headers, Header{h.Key, h.Value})
			}
			got = append(got, r)
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return got, fmt.Errorf("commit: %w", err)
	}
	return got, nil
}

func saramaAsyncProduce(ctx context.Context, b, topic string, recs []Rec) ([]Rec, error) {
	cfg := saramaConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Compression = sarama.CompressionSnappy
	p, err := sarama.NewAsyncProducer([]string{b}, cfg)
	if err != nil {
		return nil, err
	}
	go func() {
		for i, r := range recs {
			m := &sarama.ProducerMessage{Topic: topic, Timestamp: r.Time, Metadata: i}
			if r.Key != nil {
				m.Key = sarama.ByteEncoder(r.Key)
			}
			if r.Value != nil {
				m.Value = sarama.ByteEncoder(r.Value)
			}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
			}
			p.Input() <- m
		}
		p.AsyncClose()
	}()
	out := make([]Rec, len(recs))
	var errs []error
	succ, fail := p.Successes(), p.Errors()
	for succ != nil || fail != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			i := m.Metadata.(int)
			out[i] = recs[i]
			out[i].Partition, out[i].Offset = m.Partition, m.Offset
		case e, ok := <-fail:
			if !ok {
				fail = nil
				continue
			}
			errs = append(errs, e)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d failed, first: %w", len(errs), len(recs), errs[0])
	}
	return out, nil
}

type saramaHandler struct {
	mu   sync.Mutex
	got  []Rec
	want int
	done context.CancelFunc
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		r := Rec{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Timestamp}
		for _, hd := range m.Headers {
			r.Headers = append(r.Headers, Header{string(hd.Key), hd.Value})
		}
		sess.MarkMessage(m, "")
		h.mu.Lock()
		h.got = append(h.got, r)
		if len(h.got) >= h.want {
			sess.Commit()
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

func saramaGroup(ctx context.Context, b, topic, group string, want int) ([]Rec, error) {
	cfg := saramaConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	cg, err := sarama.NewConsumerGroup([]string{b}, group, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	done, stop := context.WithCancel(ctx)
	defer stop()
	h := &saramaHandler{want: want, done: stop}
	go func() {
		for err := range cg.Errors() {
			_ = err // rebalances report here; a real failure shows as a short read
		}
	}()
	for done.Err() == nil {
		if err := cg.Consume(done, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			cg.Close()
			return h.got, fmt.Errorf("consume: %w", err)
		}
	}
	if err := cg.Close(); err != nil {
		return h.got, fmt.Errorf("close: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) < want {
		return h.got, fmt.Errorf("read %d of %d records: %v", len(h.got), want, ctx.Err())
	}
	return h.got, nil
}

func kafkaGoGroup(ctx context.Context, b, topic, group string, want int) ([]Rec, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b}, GroupID: group, Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	var got []Rec
	for len(got) < want {
		m, err := r.ReadMessage(ctx) // commits synchronously (CommitInterval 0)
		if err != nil {
			r.Close()
			return got, fmt.Errorf("read %d of %d records: %w", len(got), want, err)
		}
		rec := Rec{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
		for _, h := range m.Headers {
			rec.Headers = append(rec.Headers, Header{h.Key, h.Value})
		}
		got = append(got, rec)
	}
	return got, r.Close()
}
