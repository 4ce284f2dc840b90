package compat

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// Rec is a record as written or read, client-neutral. A nil Key or Value is
// a null one, distinct from an empty one.
type Rec struct {
	Partition int32 // -1 before the broker acknowledged it
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time // millisecond precision, as on the wire
}

type Header struct {
	Key   string
	Value []byte
}

// Codecs every writer uses, in this order, one producer each.
var Codecs = []string{"gzip", "snappy", "lz4", "zstd"}

const (
	partitions      = 4
	perCodec        = 100
	waitFor         = 60 * time.Second
	bootstrapEnvVar = "KAFKA_BOOTSTRAP"
)

func bootstrap(t *testing.T) string {
	b := os.Getenv(bootstrapEnvVar)
	if b == "" {
		t.Fatalf("set %s to the broker's host:port", bootstrapEnvVar)
	}
	return b
}

// topicName is unique per run and readable in broker logs.
func topicName(t *testing.T, what string) string {
	return fmt.Sprintf("go-%s-%d", what, time.Now().UnixNano())
}

// makeRecords is the dataset: 25 keys (each must stay in one partition),
// every tenth key null, some null and empty values, no headers, one header,
// a repeated header key, an empty header value, multi-byte UTF-8.
func makeRecords(tag string, n int, t0 time.Time) []Rec {
	recs := make([]Rec, n)
	for i := range recs {
		r := Rec{Partition: -1, Offset: -1, Time: t0.Add(time.Duration(i) * time.Millisecond)}
		if i%10 != 9 {
			r.Key = []byte(fmt.Sprintf("key-%d", i%25))
		}
		switch i % 50 {
		case 7:
			r.Value = nil
		case 8:
			r.Value = []byte{}
		default:
			r.Value = []byte(fmt.Sprintf("%s value %d ü€😀 %s", tag, i, strings.Repeat("z", i%60)))
		}
		switch i % 4 {
		case 1:
			r.Headers = []Header{{"idx", []byte(fmt.Sprint(i))}}
		case 2:
			r.Headers = []Header{{"idx", []byte(fmt.Sprint(i))}, {"dup", []byte("a")}, {"dup", []byte("b")}}
		case 3:
			r.Headers = []Header{{"tag", []byte(tag)}, {"empty", []byte{}}}
		}
		recs[i] = r
	}
	return recs
}

func show(b []byte, nullBlind bool) string {
	if b == nil && !nullBlind {
		return "<null>"
	}
	return fmt.Sprintf("%q", b)
}

// canon is a record's identity for comparisons: everything, null distinct
// from empty unless nullBlind.
func (r Rec) canon(withPosition, nullBlind bool) string {
	var sb strings.Builder
	if withPosition {
		fmt.Fprintf(&sb, "p%d@%d ", r.Partition, r.Offset)
	}
	fmt.Fprintf(&sb, "k=%s v=%s t=%d h=[", show(r.Key, false), show(r.Value, nullBlind), r.Time.UnixMilli())
	for _, h := range r.Headers {
		fmt.Fprintf(&sb, "%s:%s ", h.Key, show(h.Value, nullBlind))
	}
	sb.WriteString("]")
	return sb.String()
}

// checkAcks: every record acknowledged once, dense offsets from 0 per
// partition, each key in a single partition, more than one partition used.
func checkAcks(t *testing.T, acked []Rec) {
	t.Helper()
	offsets := map[int32][]int64{}
	keyPartition := map[string]int32{}
	for _, r := range acked {
		if r.Partition < 0 || r.Partition >= partitions || r.Offset < 0 {
			t.Fatalf("acknowledged at partition %d offset %d: %s", r.Partition, r.Offset, r.canon(false, false))
		}
		offsets[r.Partition] = append(offsets[r.Partition], r.Offset)
		if r.Key != nil {
			if p, ok := keyPartition[string(r.Key)]; ok && p != r.Partition {
				t.Errorf("key %q in partitions %d and %d", r.Key, p, r.Partition)
			}
			keyPartition[string(r.Key)] = r.Partition
		}
	}
	if len(offsets) < 2 {
		t.Errorf("all records went to partitions %v", offsets)
	}
	for p, os := range offsets {
		sort.Slice(os, func(i, j int) bool { return os[i] < os[j] })
		for i, o := range os {
			if o != int64(i) {
				t.Fatalf("partition %d: acknowledged offsets %v, want 0..%d", p, os, len(os)-1)
			}
		}
	}
}

// checkRead: got holds exactly want (partition, offset and content), each
// partition in offset order.
func checkRead(t *testing.T, want, got []Rec, nullBlind bool) {
	t.Helper()
	count := map[string]int{}
	for _, r := range want {
		count[r.canon(true, nullBlind)]++
	}
	var extra []string
	for _, r := range got {
		c := r.canon(true, nullBlind)
		if count[c] == 0 {
			extra = append(extra, c)
		}
		count[c]--
	}
	var missing []string
	for c, n := range count {
		if n > 0 {
			missing = append(missing, c)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("read %d records, want %d: %d missing, e.g. %v; %d unexpected, e.g. %v",
			len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
	last := map[int32]int64{}
	for _, r := range got {
		if l, ok := last[r.Partition]; ok && r.Offset <= l {
			t.Errorf("partition %d: offset %d read after %d", r.Partition, r.Offset, l)
		}
		last[r.Partition] = r.Offset
	}
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}
