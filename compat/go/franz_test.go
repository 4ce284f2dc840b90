package compat

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var franzCodecs = map[string]kgo.CompressionCodec{
	"gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

var franzGo = client{
	name: "franz-go",
	createTopic: func(ctx context.Context, bootstrap, topic string, partitions int) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
		if err != nil {
			return err
		}
		defer cl.Close()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
		if err != nil {
			return err
		}
		return resp.Err
	},
	produce: func(ctx context.Context, bootstrap, topic, codec string, recs []Rec) ([]Rec, error) {
		// franz-go is idempotent by default, which needs InitProducerId.
		cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic),
			kgo.ProducerBatchCompression(franzCodecs[codec]), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.DisableIdempotentWrite())
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		krs := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			kr := &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: r.Time}
			for _, h := range r.Headers {
				kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			krs[i] = kr
		}
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			return nil, err
		}
		out := make([]Rec, len(recs))
		for i, r := range recs {
			r.Partition, r.Offset = krs[i].Partition, krs[i].Offset
			out[i] = r
		}
		return out, nil
	},
	consumeAll: func(ctx context.Context, bootstrap, topic string, partitions int) ([]Rec, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
		if err != nil {
			return nil, err
		}
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		cl.Close()
		if err != nil {
			return nil, err
		}
		want := int64(0)
		start := map[int32]kgo.Offset{}
		for p := 0; p < partitions; p++ {
			end, ok := ends.Lookup(topic, int32(p))
			if !ok || end.Err != nil {
				return nil, fmt.Errorf("end offset of partition %d: %v", p, end.Err)
			}
			want += end.Offset
			start[int32(p)] = kgo.NewOffset().AtStart()
		}
		cl, err = kgo.NewClient(kgo.SeedBrokers(bootstrap),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, waitFor)
		defer cancel()
		var got []Rec
		for int64(len(got)) < want {
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
		return got, nil
	},
}
