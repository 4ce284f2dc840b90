package compat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// TestSchemaRegistry drives samsa's schema registry (SCHEMA_REGISTRY_URL) with franz-go's
// sr client: JSON schemas registered and evolved, an incompatible one refused with 409,
// records encoded by sr.Serde produced through samsa and decoded after consuming, then
// the subject deleted soft and hard; then a Protobuf schema importing another registered one.
func TestSchemaRegistry(t *testing.T) {
	url, seed := os.Getenv("SCHEMA_REGISTRY_URL"), bootstrap(t)
	if url == "" {
		t.Fatal("set SCHEMA_REGISTRY_URL to samsa's schema registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rcl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		t.Fatal(err)
	}
	topic := topicName(t, "sr")
	subject := topic + "-value"

	v1 := sr.Schema{Type: sr.TypeJSON, Schema: `{"type":"object","properties":{"name":{"type":"string"}},"additionalProperties":false}`}
	v2 := sr.Schema{Type: sr.TypeJSON, Schema: `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"additionalProperties":false}`}
	bad := sr.Schema{Type: sr.TypeJSON, Schema: `{"type":"object","properties":{"name":{"type":"integer"},"age":{"type":"integer"}},"additionalProperties":false}`}

	s1, err := rcl.CreateSchema(ctx, subject, v1)
	if err != nil {
		t.Fatalf("register v1: %v", err)
	}
	again, err := rcl.CreateSchema(ctx, subject, v1)
	if err != nil || again.ID != s1.ID || again.Version != 1 {
		t.Fatalf("registering v1 again: %+v, %v; want id %d version 1", again, err, s1.ID)
	}
	s2, err := rcl.CreateSchema(ctx, subject, v2)
	if err != nil || s2.Version != 2 || s2.ID == s1.ID {
		t.Fatalf("register v2 (a property added to a closed model): %+v, %v", s2, err)
	}
	check, err := rcl.CheckCompatibility(ctx, subject, -1, bad)
	if err != nil || check.Is {
		t.Fatalf("compatibility of a narrowed type: %+v, %v; want incompatible", check, err)
	}
	_, err = rcl.CreateSchema(ctx, subject, bad)
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 || re.ErrorCode != 409 {
		t.Fatalf("registering an incompatible schema: %v; want 409", err)
	}
	if types, err := rcl.SupportedTypes(ctx); err != nil || len(types) == 0 {
		t.Fatalf("supported types: %v, %v", types, err)
	}

	// Records encoded with the registered id, through samsa and back.
	type user struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	var serde sr.Serde
	serde.Register(s2.ID, user{}, sr.EncodeFn(func(v any) ([]byte, error) { return json.Marshal(v) }),
		sr.DecodeFn(func(b []byte, v any) error { return json.Unmarshal(b, v) }))
	cl, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().AtStart()},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	value, err := serde.Encode(user{Name: "ada", Age: 36})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got []*kgo.Record
	for len(got) == 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed: %v", err)
		}
		got = append(got, fetches.Records()...)
	}
	id, _, err := serde.DecodeID(got[0].Value)
	if err != nil || id != s2.ID {
		t.Fatalf("schema id in the record: %d, %v; want %d", id, err, s2.ID)
	}
	var back user
	if err := serde.Decode(got[0].Value, &back); err != nil || back != (user{Name: "ada", Age: 36}) {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	writer, err := rcl.SchemaByID(ctx, id)
	if err != nil || writer.Type != sr.TypeJSON {
		t.Fatalf("the writer's schema by id: %+v, %v", writer, err)
	}

	// Soft, then hard.
	if versions, err := rcl.DeleteSubject(ctx, subject, sr.SoftDelete); err != nil || len(versions) != 2 {
		t.Fatalf("soft delete: %v, %v", versions, err)
	}
	if versions, err := rcl.DeleteSubject(ctx, subject, sr.HardDelete); err != nil || len(versions) != 2 {
		t.Fatalf("hard delete: %v, %v", versions, err)
	}
	if _, err := rcl.SchemaByVersion(ctx, subject, 1); !errors.As(err, &re) || re.ErrorCode != 40401 {
		t.Fatalf("a hard-deleted subject: %v; want 40401", err)
	}

	// Protobuf: a schema importing another by the reference's name.
	money := sr.Schema{Type: sr.TypeProtobuf, Schema: `syntax = "proto3"; package shop; message Money { int64 units = 1; }`}
	m, err := rcl.CreateSchema(ctx, topic+"-money", money)
	if err != nil {
		t.Fatalf("register money.proto: %v", err)
	}
	ref := sr.SchemaReference{Name: "shop/money.proto", Subject: topic + "-money", Version: m.Version}
	order := func(priceType string) sr.Schema {
		return sr.Schema{Type: sr.TypeProtobuf, References: []sr.SchemaReference{ref},
			Schema: `syntax = "proto3"; package shop; import "shop/money.proto"; message Order { ` + priceType + ` price = 1; }`}
	}
	o, err := rcl.CreateSchema(ctx, topic+"-order", order("Money"))
	if err != nil || len(o.References) != 1 || o.Type != sr.TypeProtobuf {
		t.Fatalf("register order.proto: %+v, %v", o, err)
	}
	check, err = rcl.CheckCompatibility(ctx, topic+"-order", -1, order("string"))
	if err != nil || check.Is {
		t.Fatalf("a message field made a string: %+v, %v; want incompatible", check, err)
	}
}
