package compat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franz-go's share consumer (kgo.ShareGroup, KIP-932). The broker must have share
// groups on (share.version >= 1); compat/tests/test_go.py turns them on first. A
// share group starts reading where share.auto.offset.reset says, `latest` by default,
// and is fixed when its share-partition is first fetched: each case therefore writes
// "warm-up" records until its consumers read one, and only then the records it
// checks, all of which come after the share-partition's start.

// The delivery-count limit of Kafka 4.4's defaults (group.share.delivery.count.limit).
const shareDeliveryLimit = 5

type shareClient struct {
	name string
	cl   *kgo.Client
}

func newShareClient(t *testing.T, b, topic, group, name string) *shareClient {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.ClientID("compat-"+name), kgo.ShareGroup(group),
		kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(cl.Close)
	return &shareClient{name: name, cl: cl}
}

// poll returns what one poll of up to 500ms brought; context deadlines are not errors.
func (c *shareClient) poll(ctx context.Context) ([]*kgo.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	fetches := c.cl.PollFetches(ctx)
	for _, e := range fetches.Errors() {
		if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) {
			continue
		}
		return nil, fmt.Errorf("%s: fetch %s/%d: %w", c.name, e.Topic, e.Partition, e.Err)
	}
	return fetches.Records(), nil
}

// shareFixture is a one-partition topic, its group and a producer writing to it.
type shareFixture struct {
	t            *testing.T
	b            string
	topic, group string
	prod         *kgo.Client
	adm          *kadm.Client
}

func newShareFixture(ctx context.Context, t *testing.T, what string) *shareFixture {
	t.Helper()
	b := bootstrap(t)
	f := &shareFixture{t: t, b: b, topic: topicName(t, what), group: topicName(t, what+"-g")}
	if err := franzGo.createTopic(ctx, b, f.topic, 1); err != nil {
		t.Fatalf("create topic %s: %v", f.topic, err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.DefaultProduceTopic(f.topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	f.prod, f.adm = prod, kadm.NewClient(prod)
	return f
}

// produce writes each value in a request of its own, so each is a batch of its own.
func (f *shareFixture) produce(ctx context.Context, values ...string) []int64 {
	f.t.Helper()
	offsets := make([]int64, len(values))
	for i, v := range values {
		r, err := f.prod.ProduceSync(ctx, kgo.StringRecord(v)).First()
		if err != nil {
			f.t.Fatalf("produce %q: %v", v, err)
		}
		offsets[i] = r.Offset
	}
	return offsets
}

// warmUp writes warm-up records until one of the consumers reads one; each accepts what
// it read. From then on the share-partition's start is fixed, before anything written next.
func (f *shareFixture) warmUp(ctx context.Context, consumers ...*shareClient) {
	f.t.Helper()
	deadline := time.Now().Add(waitFor)
	for i := 0; time.Now().Before(deadline); i++ {
		f.produce(ctx, fmt.Sprintf("warm-%d", i))
		for _, c := range consumers {
			rs, err := c.poll(ctx)
			if err != nil {
				f.t.Fatal(err)
			}
			for _, r := range rs {
				r.Ack(kgo.AckAccept)
			}
			if len(rs) > 0 {
				if err := c.cl.FlushAcks(ctx); err != nil {
					f.t.Fatalf("%s: flush acks: %v", c.name, err)
				}
				return
			}
		}
	}
	f.t.Fatalf("no consumer read a warm-up record of %s within %v", f.topic, waitFor)
}

// shareOffset is the share-partition's entry in kadm's DescribeShareGroupOffsets.
func (f *shareFixture) shareOffset(ctx context.Context) kadm.ShareOffset {
	f.t.Helper()
	described, err := f.adm.DescribeShareGroupOffsets(ctx, f.group)
	if err != nil {
		f.t.Fatalf("describe share group offsets: %v", err)
	}
	o, ok := described[f.group].Offsets.Lookup(f.topic, 0)
	if !ok || o.Err != nil {
		f.t.Fatalf("share group offsets of %s: %+v (found %v)", f.group, described[f.group], ok)
	}
	return o
}

// awaitNoLag waits for the share-partition's lag to be 0: every record written
// acknowledged or archived. (Not the start offset: the one Kafka 4.4 reports can trail the
// records already acknowledged, which its lag accounts for.)
func (f *shareFixture) awaitNoLag(ctx context.Context) {
	f.t.Helper()
	deadline := time.Now().Add(waitFor)
	got := f.shareOffset(ctx)
	for got.Lag != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = f.shareOffset(ctx)
	}
	if got.Lag != 0 {
		f.t.Fatalf("share-partition lag %d (start offset %d), want 0", got.Lag, got.StartOffset)
	}
}

// delivery is one record as a consumer got it.
type delivery struct {
	consumer string
	offset   int64
	value    string
	count    int32
}

// readUntil polls the consumers in turn, acknowledging each record with ack(record), until
// done holds for what was read; warm-up records are accepted and left out.
func readUntil(ctx context.Context, t *testing.T, what string, consumers []*shareClient,
	ack func(*kgo.Record) kgo.AckStatus, done func([]delivery) bool) []delivery {
	t.Helper()
	var (
		mu   sync.Mutex
		got  []delivery
		errs []error
		wg   sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	finished := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) > 0 || done(got)
	}
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !finished() {
				rs, err := c.poll(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				for _, r := range rs {
					if strings.HasPrefix(string(r.Value), "warm-") {
						r.Ack(kgo.AckAccept)
						continue
					}
					got = append(got, delivery{c.name, r.Offset, string(r.Value), r.DeliveryCount()})
					r.Ack(ack(r))
				}
				mu.Unlock()
				if len(rs) > 0 {
					if err := c.cl.FlushAcks(ctx); err != nil && ctx.Err() == nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: flush acks: %w", c.name, err))
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("reading until %s: %v", what, errs)
	}
	if !done(got) {
		t.Fatalf("not %s within %v; read %+v", what, waitFor, got)
	}
	return got
}

func accept(*kgo.Record) kgo.AckStatus { return kgo.AckAccept }

func seen(value string) func([]delivery) bool {
	return func(ds []delivery) bool {
		for _, d := range ds {
			if d.value == value {
				return true
			}
		}
		return false
	}
}

// oneShareConsumer is a fixture with one consumer in its group, warmed up.
func oneShareConsumer(ctx context.Context, t *testing.T, what string) (*shareFixture, *shareClient) {
	t.Helper()
	f := newShareFixture(ctx, t, what)
	c := newShareClient(t, f.b, f.topic, f.group, "c")
	f.warmUp(ctx, c)
	return f, c
}

func TestShareConsumer(t *testing.T) {
	t.Run("accept", func(t *testing.T) {
		// Each record delivered once, with delivery count 1; once all are accepted the
		// share-partition has no lag.
		ctx := context.Background()
		f, c := oneShareConsumer(ctx, t, "share-accept")
		values := make([]string, 20)
		for i := range values {
			values[i] = fmt.Sprintf("r-%d", i)
		}
		offsets := f.produce(ctx, values...)
		got := readUntil(ctx, t, "every record read", []*shareClient{c}, accept,
			func(ds []delivery) bool { return len(ds) >= len(values) })
		for i, d := range got {
			if d.value != values[i] || d.offset != offsets[i] || d.count != 1 {
				t.Fatalf("delivery %d is %+v, want %s at %d delivered once; all: %+v", i, d, values[i], offsets[i], got)
			}
		}
		f.awaitNoLag(ctx)
	})

	t.Run("release", func(t *testing.T) {
		// A released record comes back with its delivery count one higher, up to the
		// limit; released then, it is archived and never delivered again.
		ctx := context.Background()
		f, c := oneShareConsumer(ctx, t, "share-release")
		at := f.produce(ctx, "released")[0]
		release := func(*kgo.Record) kgo.AckStatus { return kgo.AckRelease }
		got := readUntil(ctx, t, "the limit's deliveries", []*shareClient{c}, release,
			func(ds []delivery) bool { return len(ds) >= shareDeliveryLimit })
		for i, d := range got {
			if d.value != "released" || d.offset != at || d.count != int32(i+1) {
				t.Fatalf("delivery %d is %+v, want the released record at %d, count %d; all: %+v", i, d, at, i+1, got)
			}
		}
		// Archived: nothing left to read, and a record written next is the next one read.
		f.awaitNoLag(ctx)
		f.produce(ctx, "next")
		after := readUntil(ctx, t, "the next record read", []*shareClient{c}, accept, seen("next"))
		for _, d := range after {
			if d.value != "next" || d.count != 1 {
				t.Fatalf("after archiving, read %+v, want only the next record", after)
			}
		}
	})

	t.Run("reject", func(t *testing.T) {
		// A rejected record is archived at once: never delivered again.
		ctx := context.Background()
		f, c := oneShareConsumer(ctx, t, "share-reject")
		at := f.produce(ctx, "poison")[0]
		reject := func(r *kgo.Record) kgo.AckStatus {
			if string(r.Value) == "poison" {
				return kgo.AckReject
			}
			return kgo.AckAccept
		}
		got := readUntil(ctx, t, "the poison record read", []*shareClient{c}, reject, seen("poison"))
		f.awaitNoLag(ctx)
		next := f.produce(ctx, "good")[0]
		got = append(got, readUntil(ctx, t, "the good record read", []*shareClient{c}, reject, seen("good"))...)
		want := []delivery{{"c", at, "poison", 1}, {"c", next, "good", 1}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("read %+v, want %+v", got, want)
		}
		f.awaitNoLag(ctx)
	})

	t.Run("two-consumers", func(t *testing.T) {
		// Two members of one group, both assigned the topic's one partition, read it
		// together: each record goes to one of them, once, and both get some.
		ctx := context.Background()
		f := newShareFixture(ctx, t, "share-two")
		a := newShareClient(t, f.b, f.topic, f.group, "a")
		c := newShareClient(t, f.b, f.topic, f.group, "c")
		awaitBothAssigned(ctx, t, f)
		f.warmUp(ctx, a, c)
		const n = 60
		var (
			wg      sync.WaitGroup
			offsets []int64
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				offsets = append(offsets, f.produce(ctx, fmt.Sprintf("s-%d", i))[0])
				time.Sleep(20 * time.Millisecond) // spread over time, so both members fetch some
			}
		}()
		got := readUntil(ctx, t, "every record read", []*shareClient{a, c}, accept,
			func(ds []delivery) bool { return len(ds) >= n })
		wg.Wait()
		byOffset := map[int64]delivery{}
		per := map[string]int{}
		for _, d := range got {
			if prev, dup := byOffset[d.offset]; dup {
				t.Fatalf("offset %d delivered twice: %+v and %+v", d.offset, prev, d)
			}
			if d.count != 1 {
				t.Fatalf("delivery count %d for %+v", d.count, d)
			}
			byOffset[d.offset] = d
			per[d.consumer]++
		}
		for _, o := range offsets {
			if _, ok := byOffset[o]; !ok {
				t.Fatalf("offset %d never read; read %+v", o, got)
			}
		}
		if per["a"] == 0 || per["c"] == 0 {
			t.Fatalf("one member read everything: %v", per)
		}
		f.awaitNoLag(ctx)
	})
}

// awaitBothAssigned waits until the group has two members, each assigned partition 0.
func awaitBothAssigned(ctx context.Context, t *testing.T, f *shareFixture) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var last any
	for time.Now().Before(deadline) {
		described, err := f.adm.DescribeShareGroups(ctx, f.group)
		g := described[f.group]
		last = err
		if err == nil && g.Err == nil {
			last = g.Members
			both := len(g.Members) == 2
			for _, m := range g.Members {
				both = both && len(m.Assignment[f.topic]) == 1
			}
			if both {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the two members were not both assigned %s within %v: %+v", f.topic, waitFor, last)
}
