package compat

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// member848 is one franz-go consumer in a KIP-848 group (ServerSideBalancer): the
// coordinator assigns its partitions, the client only reports what it owns.
type member848 struct {
	name string
	cl   *kgo.Client
	mu   sync.Mutex
	// Partitions of the topic this member owns now.
	owned map[int32]bool
	// Records read, by partition.
	read map[int32][]int64
}

func newMember848(t *testing.T, b, topic, group, name string) *member848 {
	m := &member848{name: name, owned: map[int32]bool{}, read: map[int32][]int64{}}
	track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range ps[topic] {
				if add {
					m.owned[p] = true
				} else {
					delete(m.owned, p)
				}
			}
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)),
		kgo.OnPartitionsLost(track(false)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m.cl = cl
	return m
}

// poll reads what is there for a moment and commits it.
func (m *member848) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	fetches := m.cl.PollFetches(ctx)
	for _, e := range fetches.Errors() {
		if e.Err != context.DeadlineExceeded {
			return fmt.Errorf("%s: fetch %s/%d: %w", m.name, e.Topic, e.Partition, e.Err)
		}
	}
	m.mu.Lock()
	fetches.EachRecord(func(r *kgo.Record) { m.read[r.Partition] = append(m.read[r.Partition], r.Offset) })
	m.mu.Unlock()
	return m.cl.CommitUncommittedOffsets(context.Background())
}

func (m *member848) ownedList() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.owned {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func (m *member848) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, offs := range m.read {
		n += len(offs)
	}
	return n
}

// pollUntil polls every member in turn until done holds or the time is up.
func pollUntil(ctx context.Context, t *testing.T, what string, members []*member848, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !done() {
		if time.Now().After(deadline) {
			var state []string
			for _, m := range members {
				state = append(state, fmt.Sprintf("%s owns %v, read %d", m.name, m.ownedList(), m.total()))
			}
			t.Fatalf("%s: not within %v: %v", what, waitFor, state)
		}
		for _, m := range members {
			if err := m.poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestConsumerProtocol: franz-go consumers in a KIP-848 group (the broker assigns with its
// `range` assignor). Two members split the four partitions between them, each record is
// read exactly once, the group is listed as a `consumer` group, and when one member leaves
// the other takes its partitions over and resumes at its commits.
func TestConsumerProtocol(t *testing.T) {
	b := bootstrap(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	topic, group := topicName(t, "kip848"), topicName(t, "kip848-g")
	if err := franzGo.createTopic(ctx, b, topic, partitions); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	a := newMember848(t, b, topic, group, "a")
	defer a.cl.Close()
	c := newMember848(t, b, topic, group, "c")
	members := []*member848{a, c}
	split := func() bool {
		pa, pc := a.ownedList(), c.ownedList()
		return len(pa) == partitions/2 && len(pc) == partitions/2
	}
	pollUntil(ctx, t, "the two members split the partitions", members, split)
	for _, p := range a.ownedList() {
		for _, q := range c.ownedList() {
			if p == q {
				t.Fatalf("partition %d is owned by both members", p)
			}
		}
	}

	first, err := franzGo.produce(ctx, b, topic, "lz4", makeRecords("kip848-1", 200, time.Now().Truncate(time.Millisecond)))
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	pollUntil(ctx, t, "every record read", members, func() bool { return a.total()+c.total() >= len(first) })
	checkReadOnce(t, first, members)
	checkListedAsConsumerGroup(ctx, t, a.cl, group)

	// c leaves the group (its commits are in): a takes over c's partitions and reads
	// only what was written since.
	cOwned := c.ownedList()
	c.cl.Close()
	members = []*member848{a}
	pollUntil(ctx, t, "the remaining member owns every partition", members, func() bool {
		return len(a.ownedList()) == partitions
	})
	second, err := franzGo.produce(ctx, b, topic, "lz4", makeRecords("kip848-2", 100, time.Now().Truncate(time.Millisecond)))
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	before := a.total()
	pollUntil(ctx, t, "the new records read", members, func() bool { return a.total()-before >= len(second) })
	if got := a.total() - before; got != len(second) {
		t.Fatalf("read %d records after c left, want exactly the %d new ones (c owned %v)", got, len(second), cOwned)
	}
}

// checkReadOnce: every acknowledged record was read by exactly one member, the one that
// owned its partition.
func checkReadOnce(t *testing.T, acked []Rec, members []*member848) {
	t.Helper()
	readBy := map[[2]int64]string{}
	for _, m := range members {
		m.mu.Lock()
		for p, offs := range m.read {
			for _, o := range offs {
				key := [2]int64{int64(p), o}
				if who, ok := readBy[key]; ok {
					t.Errorf("partition %d offset %d read by %s and %s", p, o, who, m.name)
				}
				readBy[key] = m.name
			}
		}
		m.mu.Unlock()
	}
	for _, r := range acked {
		if _, ok := readBy[[2]int64{int64(r.Partition), r.Offset}]; !ok {
			t.Errorf("partition %d offset %d was not read", r.Partition, r.Offset)
		}
	}
}

// checkListedAsConsumerGroup: ListGroups v5 with the `consumer` type filter lists the group,
// so the broker really ran it as a KIP-848 group (franz-go falls back to the classic
// protocol on a broker without it).
func checkListedAsConsumerGroup(ctx context.Context, t *testing.T, cl *kgo.Client, group string) {
	t.Helper()
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = 5
	req.TypesFilter = []string{"consumer"}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	for _, g := range resp.Groups {
		if g.Group == group {
			if g.GroupType != "consumer" {
				t.Fatalf("group %s listed as %q", group, g.GroupType)
			}
			return
		}
	}
	t.Fatalf("group %s is not listed as a consumer group", group)
}
