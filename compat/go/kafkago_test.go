package compat

import (
	"context"
	"fmt"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

var kafkaGoCodecs = map[string]kafka.Compression{
	"gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd,
}

var kafkaGo = client{
	name: "kafka-go",
	// Its Reader returns an empty value or header value as nil.
	nullBlind: true,
	createTopic: func(ctx context.Context, bootstrap, topic string, partitions int) error {
		c := &kafka.Client{Addr: kafka.TCP(bootstrap)}
		resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
			Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
		})
		if err != nil {
			return err
		}
		return resp.Errors[topic]
	},
	produce: func(ctx context.Context, bootstrap, topic, codec string, recs []Rec) ([]Rec, error) {
		out := make([]Rec, len(recs))
		copy(out, recs)
		// Completion reports each message's partition and offset; WriterData says which one it is.
		w := &kafka.Writer{
			Addr: kafka.TCP(bootstrap), Topic: topic, Balancer: kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, Compression: kafkaGoCodecs[codec],
			BatchSize: 50, BatchTimeout: 5 * time.Millisecond,
			Completion: func(msgs []kafka.Message, err error) {
				if err != nil {
					return
				}
				for _, m := range msgs {
					i := m.WriterData.(int)
					out[i].Partition, out[i].Offset = int32(m.Partition), m.Offset
				}
			},
		}
		msgs := make([]kafka.Message, len(recs))
		for i, r := range recs {
			m := kafka.Message{Key: r.Key, Value: r.Value, Time: r.Time, WriterData: i}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
			}
			msgs[i] = m
		}
		err := w.WriteMessages(ctx, msgs...)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return out, err
	},
	consumeAll: func(ctx context.Context, bootstrap, topic string, partitions int) ([]Rec, error) {
		c := &kafka.Client{Addr: kafka.TCP(bootstrap)}
		var reqs []kafka.OffsetRequest
		for p := 0; p < partitions; p++ {
			reqs = append(reqs, kafka.LastOffsetOf(p))
		}
		resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, err
		}
		ends := map[int]int64{}
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("end offset of partition %d: %w", po.Partition, po.Error)
			}
			ends[po.Partition] = po.LastOffset
		}
		ctx, cancel := context.WithTimeout(ctx, waitFor)
		defer cancel()
		var got []Rec
		for p := 0; p < partitions; p++ {
			if ends[p] == 0 {
				continue
			}
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: []string{bootstrap}, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond,
			})
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				r.Close()
				return got, err
			}
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					r.Close()
					return got, fmt.Errorf("partition %d: %w", p, err)
				}
				rec := Rec{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
				for _, h := range m.Headers {
					rec.Headers = append(rec.Headers, Header{h.Key, h.Value})
				}
				got = append(got, rec)
				if m.Offset+1 >= ends[p] {
					break
				}
			}
			r.Close()
		}
		return got, nil
	},
}
