package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestShareWorker is not a test on its own: it is a franz-go share consumer that
// compat/tests/test_cluster_share.py runs as a process while it kills brokers. It reads
// SHARE_TOPIC in share group SHARE_GROUP until its stdin closes, and writes a line per
// event to stdout:
//
//	D <partition> <offset> <value> <delivery count>   a record was delivered
//	A <partition> <offset>                            its accept was confirmed by the broker
//	F <partition> <offset> <error>                    its acknowledgement failed (it comes back)
//
// A record whose value ends in 3 is released on its first delivery (so redeliveries
// happen throughout), every other record accepted. An acknowledgement counts as confirmed
// only when every ShareAckCallback result between it and the FlushAcks after it was a
// success.
func TestShareWorker(t *testing.T) {
	topic, group := os.Getenv("SHARE_TOPIC"), os.Getenv("SHARE_GROUP")
	if topic == "" || group == "" {
		t.Skip("run by compat/tests/test_cluster_share.py (SHARE_TOPIC, SHARE_GROUP)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	var (
		mu      sync.Mutex
		ackErrs []error
	)
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap(t), ",")...), kgo.ShareGroup(group),
		kgo.ConsumeTopics(topic), kgo.ClientID("compat-share-worker"),
		kgo.ShareAckCallback(func(_ *kgo.Client, rs kgo.ShareAckResults) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rs {
				if r.Err != nil {
					ackErrs = append(ackErrs, r.Err)
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()

	for ctx.Err() == nil {
		pollCtx, cancelPoll := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		cancelPoll()
		for _, e := range fetches.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "fetch %s/%d: %v\n", e.Topic, e.Partition, e.Err)
			}
		}
		records := fetches.Records()
		if len(records) == 0 {
			continue
		}
		mu.Lock()
		ackErrs = nil
		mu.Unlock()
		var accepted []*kgo.Record
		for _, r := range records {
			fmt.Fprintf(out, "D %d %d %s %d\n", r.Partition, r.Offset, r.Value, r.DeliveryCount())
			if strings.HasSuffix(string(r.Value), "3") && r.DeliveryCount() == 1 {
				r.Ack(kgo.AckRelease)
			} else {
				r.Ack(kgo.AckAccept)
				accepted = append(accepted, r)
			}
		}
		// Not ctx: the acknowledgements of what was read go out even when told to stop.
		flushCtx, cancelFlush := context.WithTimeout(context.Background(), 20*time.Second)
		flushErr := cl.FlushAcks(flushCtx)
		cancelFlush()
		mu.Lock()
		if flushErr == nil && len(ackErrs) > 0 {
			flushErr = ackErrs[0]
		}
		mu.Unlock()
		for _, r := range accepted {
			if flushErr == nil {
				fmt.Fprintf(out, "A %d %d\n", r.Partition, r.Offset)
			} else {
				fmt.Fprintf(out, "F %d %d %s\n", r.Partition, r.Offset, strconv.Quote(flushErr.Error()))
			}
		}
		out.Flush()
	}
}
