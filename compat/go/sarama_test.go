package compat

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

var saramaCodecs = map[string]sarama.CompressionCodec{
	"gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

// saramaConfig: sarama picks request versions from config.Version, not from
// ApiVersions; record headers need 0.11+, zstd 2.1+. Take the newest it knows.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.MaxVersion
	cfg.ClientID = "samsa-compat-sarama"
	return cfg
}

var sarama_ = client{
	name: "sarama",
	createTopic: func(ctx context.Context, bootstrap, topic string, partitions int) error {
		admin, err := sarama.NewClusterAdmin([]string{bootstrap}, saramaConfig())
		if err != nil {
			return err
		}
		defer admin.Close()
		return admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: 1}, false)
	},
	produce: func(ctx context.Context, bootstrap, topic, codec string, recs []Rec) ([]Rec, error) {
		cfg := saramaConfig()
		cfg.Producer.Return.Successes = true
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Compression = saramaCodecs[codec]
		cfg.Producer.Flush.Frequency = 5 * time.Millisecond
		p, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		msgs := make([]*sarama.ProducerMessage, len(recs))
		for i, r := range recs {
			m := &sarama.ProducerMessage{Topic: topic, Timestamp: r.Time}
			if r.Key != nil { // a nil Encoder is a null key; ByteEncoder(nil) would not be
				m.Key = sarama.ByteEncoder(r.Key)
			}
			if r.Value != nil {
				m.Value = sarama.ByteEncoder(r.Value)
			}
			for _, h := range r.Headers {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
			}
			msgs[i] = m
		}
		if err := p.SendMessages(msgs); err != nil {
			return nil, err
		}
		out := make([]Rec, len(recs))
		for i, r := range recs {
			r.Partition, r.Offset = msgs[i].Partition, msgs[i].Offset
			out[i] = r
		}
		return out, nil
	},
	consumeAll: func(ctx context.Context, bootstrap, topic string, partitions int) ([]Rec, error) {
		cl, err := sarama.NewClient([]string{bootstrap}, saramaConfig())
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		c, err := sarama.NewConsumerFromClient(cl)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		var got []Rec
		deadline := time.After(waitFor)
		for p := int32(0); p < int32(partitions); p++ {
			end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("end offset of partition %d: %w", p, err)
			}
			if end == 0 {
				continue
			}
			pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("partition %d: %w", p, err)
			}
			for done := false; !done; {
				select {
				case m := <-pc.Messages():
					r := Rec{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Timestamp}
					for _, h := range m.Headers {
						r.Headers = append(r.Headers, Header{string(h.Key), h.Value})
					}
					got = append(got, r)
					done = m.Offset+1 >= end
				case err := <-pc.Errors():
					pc.Close()
					return got, fmt.Errorf("partition %d: %w", p, err)
				case <-deadline:
					pc.Close()
					return got, fmt.Errorf("partition %d: not at end offset %d after %s", p, end, waitFor)
				}
			}
			pc.Close()
		}
		return got, nil
	},
}
