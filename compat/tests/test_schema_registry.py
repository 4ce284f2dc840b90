"""The built-in schema registry (`[schema_registry]`) with Confluent's own client.

confluent-kafka's SchemaRegistryClient and its Avro serializer and deserializer produce
through samsa and consume back; schemas evolve compatibly, an incompatible evolution is
refused with 409, deletes go soft then hard, and a restart keeps everything. The REST
answers are checked against the examples and error codes of Confluent's API reference.
samsa only: Apache Kafka has no registry.
"""

import json
import urllib.error
import urllib.request

import pytest

from clients import ck_consume, ck_create_topic, ck_producer
from conftest import EXTERNAL, SamsaBroker, free_port
from test_go import go_tests  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(bool(EXTERNAL), reason="samsa's own registry")

CT = "application/vnd.schemaregistry.v1+json"

USER_V1 = {"type": "record", "name": "User", "namespace": "compat",
           "fields": [{"name": "name", "type": "string"}]}
USER_V2 = {"type": "record", "name": "User", "namespace": "compat",
           "fields": [{"name": "name", "type": "string"},
                      {"name": "age", "type": "int", "default": 0}]}
USER_BAD = {"type": "record", "name": "User", "namespace": "compat",
            "fields": [{"name": "name", "type": "string"},
                       {"name": "email", "type": "string"}]}


@pytest.fixture
def registry_broker(tmp_path):
    port = free_port()
    config = tmp_path / "samsa.toml"
    config.write_text(f'[schema_registry]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    b = SamsaBroker(tmp_path / "data", config=config).start()
    b.registry_url = f"http://127.0.0.1:{port}"
    try:
        yield b
    finally:
        if b.alive():
            b.stop_clean()


def call(url, method="GET", body=None, context=None, headers=()):
    """(status, decoded JSON body) of one REST call (HTTPS verified with `context`)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": CT, **dict(headers)})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            assert r.headers["Content-Type"] == CT
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def sr_client(url):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    return SchemaRegistryClient({"url": url})


def value_topic(broker, topic_name):
    """A fresh one-partition topic: (topic, its value subject, a registry client, the
    serializers' context for its values)."""
    from confluent_kafka.serialization import MessageField, SerializationContext
    topic = topic_name()
    ck_create_topic(broker.bootstrap, topic, 1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    return topic, f"{topic}-value", sr_client(broker.registry_url), ctx


def test_avro_serializers_evolve_delete_and_survive_a_restart(registry_broker, topic_name):
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    b, url = registry_broker, registry_broker.registry_url
    topic, subject, client, ctx = value_topic(registry_broker, topic_name)

    # Produce with v1 (the serializer registers it), then with a compatible v2.
    ser1 = AvroSerializer(client, json.dumps(USER_V1))
    ser2 = AvroSerializer(client, json.dumps(USER_V2))
    p = ck_producer(b.bootstrap)
    p.produce(topic, value=ser1({"name": "ada"}, ctx))
    p.produce(topic, value=ser2({"name": "bob", "age": 42}, ctx))
    assert p.flush(30) == 0
    assert client.get_versions(subject) == [1, 2]
    id1 = client.get_version(subject, 1).schema_id
    id2 = client.get_latest_version(subject).schema_id
    assert id1 != id2

    # Registering v1 again is idempotent: same id, no new version.
    assert client.register_schema(subject, Schema(json.dumps(USER_V1), "AVRO")) == id1
    assert client.get_versions(subject) == [1, 2]

    # An added field without a default cannot read v2's data: 409, nothing registered.
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(USER_BAD), "AVRO"))
    assert refused.value.http_status_code == 409
    assert refused.value.error_code == 409
    assert not client.test_compatibility(subject, Schema(json.dumps(USER_BAD), "AVRO"))
    assert client.get_versions(subject) == [1, 2]

    # The deserializer finds both writers' schemas by the ids in the records.
    deser = AvroDeserializer(client)
    values = [deser(r.value, ctx) for r in ck_consume(b.bootstrap, topic)]
    assert values == [{"name": "ada"}, {"name": "bob", "age": 42}]

    # A whole subject deleted soft, then hard; a version soft then hard.
    other = f"{topic}-key"
    client.register_schema(other, Schema('"string"', "AVRO"))
    assert client.delete_subject(other) == [1]
    assert other not in client.get_subjects()
    status, body = call(f"{url}/subjects/{other}", "DELETE")
    assert (status, body["error_code"]) == (404, 40404)
    assert client.delete_subject(other, permanent=True) == [1]
    status, body = call(f"{url}/subjects/{other}/versions?deleted=true")
    assert (status, body["error_code"]) == (404, 40401)

    status, body = call(f"{url}/subjects/{subject}/versions/1?permanent=true", "DELETE")
    assert (status, body["error_code"]) == (404, 40405), "a hard delete needs a soft one first"
    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.delete_version(subject, 1, permanent=True) == 1
    status, body = call(f"{url}/subjects/{subject}/versions/1?deleted=true")
    assert (status, body["error_code"]) == (404, 40402)

    # A restart keeps subjects, versions, ids and levels; new ids never reuse old ones.
    assert call(f"{url}/config/{subject}", "PUT", {"compatibility": "FULL"})[0] == 200
    b.restart()
    fresh = sr_client(url)
    assert fresh.get_versions(subject) == [2]
    assert fresh.get_latest_version(subject).schema_id == id2
    assert json.loads(fresh.get_schema(id2).schema_str) == USER_V2
    assert call(f"{url}/config/{subject}")[1] == {"compatibilityLevel": "FULL"}
    # The first record's schema was deleted for good (40403, as Confluent answers); the
    # second's is still there.
    records = ck_consume(b.bootstrap, topic)
    with pytest.raises(SchemaRegistryError) as gone:
        AvroDeserializer(fresh)(records[0].value, ctx)
    assert gone.value.error_code == 40403
    assert AvroDeserializer(fresh)(records[1].value, ctx) == {"name": "bob", "age": 42}
    new_id = fresh.register_schema(f"{topic}-other", Schema('"long"', "AVRO"))
    assert new_id > max(id1, id2)


def test_rest_answers_as_confluent_documents(registry_broker):
    url = registry_broker.registry_url
    string = {"schema": '"string"'}
    assert call(f"{url}/subjects") == (200, [])
    assert call(f"{url}/subjects/Kafka-key/versions", "POST", string) == (200, {"id": 1})
    assert call(f"{url}/subjects/Kafka-value/versions", "POST", string) == (200, {"id": 1})
    assert call(f"{url}/subjects")[1] == ["Kafka-key", "Kafka-value"]
    assert call(f"{url}/subjects/Kafka-value/versions") == (200, [1])
    assert call(f"{url}/schemas/ids/1") == (200, {"schema": '"string"'})
    assert call(f"{url}/subjects/Kafka-value/versions/1") == (
        200, {"subject": "Kafka-value", "version": 1, "id": 1, "schema": '"string"'})
    assert call(f"{url}/subjects/Kafka-value/versions/latest")[1]["version"] == 1
    assert call(f"{url}/subjects/Kafka-value", "POST", string)[1]["id"] == 1
    assert sorted(call(f"{url}/schemas/ids/1/subjects")[1]) == ["Kafka-key", "Kafka-value"]
    assert call(f"{url}/schemas/types")[1] == ["JSON", "PROTOBUF", "AVRO"]

    # Confluent's error codes.
    assert call(f"{url}/subjects/nope/versions")[1]["error_code"] == 40401
    assert call(f"{url}/subjects/Kafka-value/versions/7")[1]["error_code"] == 40402
    assert call(f"{url}/schemas/ids/99")[1]["error_code"] == 40403
    assert call(f"{url}/subjects/Kafka-value/versions/zero")[1]["error_code"] == 42202
    status, body = call(f"{url}/subjects/bad/versions", "POST", {"schema": '{"type":"nope"}'})
    assert (status, body["error_code"]) == (422, 42201)
    assert call(f"{url}/config", "PUT", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203
    assert call(f"{url}/config/Kafka-value")[1]["error_code"] == 40408
    assert call(f"{url}/config/Kafka-value?defaultToGlobal=true")[1] == {"compatibilityLevel": "BACKWARD"}

    # References: a schema naming a type another subject's version defines.
    address = {"type": "record", "name": "Address", "namespace": "ex",
               "fields": [{"name": "street", "type": "string"}]}
    person = {"type": "record", "name": "Person", "namespace": "ex",
              "fields": [{"name": "home", "type": "ex.Address"}]}
    status, body = call(f"{url}/subjects/address/versions", "POST", {"schema": json.dumps(address)})
    assert status == 200, body
    refs = [{"name": "ex.Address", "subject": "address", "version": 1}]
    status, body = call(f"{url}/subjects/person/versions", "POST", {"schema": json.dumps(person), "references": refs})
    assert status == 200, body
    person_id = body["id"]
    assert call(f"{url}/schemas/ids/{person_id}")[1]["references"] == refs
    assert call(f"{url}/subjects/address/versions/1/referencedby") == (200, [person_id])
    status, body = call(f"{url}/subjects/address/versions/1", "DELETE")
    assert (status, body["error_code"]) == (422, 42206), "a referenced version stays"
    status, body = call(f"{url}/subjects/person2/versions", "POST",
                        {"schema": json.dumps(person), "references": [dict(refs[0], version=9)]})
    assert (status, body["error_code"]) == (422, 42201), "a reference to nothing is invalid"

    # Compatibility checks, verbose; NONE accepts anything.
    long_ = {"schema": '"long"'}
    status, body = call(f"{url}/compatibility/subjects/Kafka-value/versions/latest?verbose=true", "POST", long_)
    assert status == 200 and body["is_compatible"] is False and body["messages"]
    assert call(f"{url}/subjects/Kafka-value/versions", "POST", long_)[0] == 409
    assert call(f"{url}/config/Kafka-value", "PUT", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert call(f"{url}/subjects/Kafka-value/versions", "POST", long_) == (200, {"id": 4})

    # Modes: READONLY refuses writes with 42205; IMPORT takes the writer's ids.
    assert call(f"{url}/mode/Kafka-key", "PUT", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    status, body = call(f"{url}/subjects/Kafka-key/versions", "POST", long_)
    assert (status, body["error_code"]) == (422, 42205)
    assert call(f"{url}/mode")[1] == {"mode": "READWRITE"}
    assert call(f"{url}/mode", "PUT", {"mode": "IMPORT"})[1]["error_code"] == 42205
    assert call(f"{url}/mode/imported", "PUT", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
    body = {"schema": '"bytes"', "id": 100, "version": 5}
    assert call(f"{url}/subjects/imported/versions", "POST", body) == (200, {"id": 100})
    assert call(f"{url}/subjects/imported/versions/5")[1]["id"] == 100
    assert call(f"{url}/subjects/Kafka-value/versions", "POST", {"schema": '"int"'})[1] == {"id": 101}


PERSON_V1 = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": False}
PERSON_V2 = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
             "additionalProperties": False}
PERSON_BAD = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}


def test_json_serializers_and_json_compatibility(registry_broker, topic_name):
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    b, url = registry_broker, registry_broker.registry_url
    topic, subject, client, ctx = value_topic(registry_broker, topic_name)

    p = ck_producer(b.bootstrap)
    p.produce(topic, value=JSONSerializer(json.dumps(PERSON_V1), client)({"name": "ada"}, ctx))
    # A property added to a closed content model is backward compatible.
    p.produce(topic, value=JSONSerializer(json.dumps(PERSON_V2), client)({"name": "bob", "age": 7}, ctx))
    assert p.flush(30) == 0
    assert client.get_versions(subject) == [1, 2]
    assert client.get_latest_version(subject).schema.schema_type == "JSON"

    # A property that becomes required refuses old documents without it: 409.
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(PERSON_BAD), "JSON"))
    assert refused.value.error_code == 409
    # Not a JSON schema at all: 42201.
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(subject, Schema('{"type": 12}', "JSON"))
    assert invalid.value.error_code == 42201

    deser = JSONDeserializer(None, schema_registry_client=client)
    values = [deser(r.value, ctx) for r in ck_consume(b.bootstrap, topic)]
    assert values == [{"name": "ada"}, {"name": "bob", "age": 7}]


def test_franz_go_sr_client(registry_broker, go_tests):  # noqa: F811 (the fixture)
    """franz-go's sr package (compat/go/sr_test.go) against the same registry."""
    import os
    import subprocess

    from go_build import GO_DIR

    env = dict(os.environ, KAFKA_BOOTSTRAP=registry_broker.bootstrap,
               SCHEMA_REGISTRY_URL=registry_broker.registry_url)
    proc = subprocess.run([str(go_tests), "-test.v", "-test.count=1", "-test.run", "^TestSchemaRegistry$"],
                          cwd=GO_DIR, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "--- PASS: TestSchemaRegistry" in out, out[-6000:]


def test_https_basic_auth_and_acls(tmp_path):
    """HTTPS with the broker's [tls] certificate, basic auth against the broker's SASL users
    (one from the config, one made at run time with AlterUserScramCredentials), and the
    broker's ACLs on `_schemas`: READ to read, WRITE to register, ALTER_CONFIGS to change
    the compatibility level; 401 and 403 (40301) as Confluent answers them."""
    import base64
    import http.client
    import ssl

    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType, ScramCredentialInfo,
                                       ScramMechanism, UserScramCredentialUpsertion)
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from clients import WAIT_S, wait_until
    from test_security import scram_user_block
    from test_tls import make_pki

    pki = make_pki(tmp_path)
    sasl_port, port = free_port(), free_port()
    config = tmp_path / "samsa.toml"
    config.write_text(
        'authorizer = true\nsuper_users = ["User:admin"]\n'
        f'[[listener]]\nname = "sasl"\naddress = "127.0.0.1:{sasl_port}"\nprotocol = "SASL_PLAINTEXT"\n'
        f'[tls]\ncert_file = "{pki["server.pem"]}"\nkey_file = "{pki["server.key"]}"\n'
        '[sasl]\nmechanisms = ["SCRAM-SHA-256"]\n' + scram_user_block("admin", "SCRAM-SHA-256", "admin-pw")
        + f'[schema_registry]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntls = true\n'
        'authentication = "basic"\n')
    b = SamsaBroker(tmp_path / "data", config=config).start()
    url = f"https://127.0.0.1:{port}"
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": "admin",
                             "sasl.password": "admin-pw"})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
        for fut in admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(u, info, f"{u}-pw".encode()) for u in ("writer", "reader")]).values():
            fut.result(WAIT_S)

        def acl(user, op):
            return AclBinding(ResourceType.TOPIC, "_schemas", ResourcePatternType.LITERAL, f"User:{user}", "*",
                              op, AclPermissionType.ALLOW)
        for fut in admin.create_acls([acl("writer", AclOperation.READ), acl("writer", AclOperation.WRITE),
                                      acl("reader", AclOperation.READ)]).values():
            fut.result(WAIT_S)

        def client(user_info):
            from confluent_kafka.schema_registry import SchemaRegistryClient
            return SchemaRegistryClient({"url": url, "ssl.ca.location": pki["ca.pem"],
                                         "basic.auth.user.info": user_info})

        def refused(call_it):
            try:
                call_it()
            except SchemaRegistryError as e:
                return e.http_status_code, e.error_code
            raise AssertionError("the call was not refused")

        schema = Schema(json.dumps(USER_V1), "AVRO")
        writer = client("writer:writer-pw")
        schema_id = wait_until(lambda: writer.register_schema("secured-value", schema), "the writer to register")
        reader = client("reader:reader-pw")
        assert reader.get_latest_version("secured-value").schema_id == schema_id
        assert refused(lambda: reader.register_schema("secured-value", Schema(json.dumps(USER_V2), "AVRO"))) \
            == (403, 40301)
        assert refused(lambda: writer.set_compatibility("secured-value", "NONE")) == (403, 40301)
        assert client("admin:admin-pw").set_compatibility("secured-value", "NONE")["compatibility"] == "NONE"
        assert refused(lambda: client("writer:wrong").get_subjects()) == (401, 401)
        assert refused(lambda: client("nobody:writer-pw").get_subjects()) == (401, 401)

        # No credentials: 401 with a challenge; to plain HTTP the listener answers a TLS alert.
        context = ssl.create_default_context(cafile=pki["ca.pem"])
        try:
            urllib.request.urlopen(f"{url}/subjects", timeout=WAIT_S, context=context)
            raise AssertionError("served without credentials")
        except urllib.error.HTTPError as e:
            assert e.code == 401 and e.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert json.loads(e.read())["error_code"] == 401
        auth = base64.b64encode(b"reader:reader-pw").decode()
        req = urllib.request.Request(f"{url}/subjects", headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=WAIT_S, context=context) as r:
            assert json.loads(r.read()) == ["secured-value"]
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/subjects", timeout=WAIT_S)
    finally:
        b.stop_clean()


def test_three_nodes_any_node_takes_writes(tmp_path):
    """A registry on each node of a cluster whose `_schemas` has two replicas: every node takes
    writes (the followers forward them to the leader of `_schemas` over mutual TLS with the
    caller's credentials, as Confluent's do), the node holding no replica serves reads and
    writes through the leader too, ids are global, and when that leader is killed the new one
    goes on with the next id."""
    import base64
    import functools
    import ssl

    from cluster import SamsaCluster
    from clients import wait_until
    from test_security import scram_user_block
    from test_tls import make_pki

    pki = make_pki(tmp_path)
    c = SamsaCluster(tmp_path / "cluster", extra="offsets_topic_replication_factor = 2\n")
    urls = {}
    for k, node in c.nodes.items():
        port = free_port()
        with open(node.config, "a") as config:
            config.write(f'[tls]\ncert_file = "{pki["server.pem"]}"\nkey_file = "{pki["server.key"]}"\n'
                         f'client_ca_file = "{pki["ca.pem"]}"\n'
                         '[sasl]\nmechanisms = ["SCRAM-SHA-256"]\n' + scram_user_block("sr", "SCRAM-SHA-256", "sr-pw")
                         + f'[schema_registry]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntls = true\n'
                         f'authentication = "basic"\nforward_ca_file = "{pki["ca.pem"]}"\n')
        urls[k] = f"https://127.0.0.1:{port}"
    auth = {"Authorization": "Basic " + base64.b64encode(b"sr:sr-pw").decode()}
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    context.load_cert_chain(pki["client.pem"], pki["client.key"])
    call_ = functools.partial(call, context=context, headers=auth)
    c.start()
    try:
        last = {}

        def register(k, schema, subject):
            last["answer"] = answer = call_(f"{urls[k]}/subjects/{subject}/versions", "POST", {"schema": schema})
            return answer if answer[0] == 200 else None

        assert wait_until(lambda: register(1, '"string"', "s"), "node 1 to take the first write")[1] == {"id": 1}
        for k in (2, 3):
            assert register(k, '"string"', "s") == (200, {"id": 1}), last

        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            call(f"{urls[1]}/subjects", context=ssl.create_default_context(cafile=pki["ca.pem"]), headers=auth)

        partition = c.metadata(1, "_schemas").topics["_schemas"].partitions[0]
        leader, replicas = partition.leader, set(partition.replicas)
        (outsider,) = set(urls) - replicas
        (follower,) = replicas - {leader}
        assert register(outsider, '"long"', "t") == (200, {"id": 2}), last
        assert register(follower, '"int"', "u") == (200, {"id": 3}), last
        for k, u in urls.items():
            wait_until(lambda: call_(f"{u}/subjects/u/versions/1")[0] == 200, f"node {k} to serve id 3")
            assert call_(f"{u}/subjects/s/versions/1")[1]["id"] == 1
            assert call_(f"{u}/schemas/ids/2")[1] == {"schema": '"long"'}

        c.nodes[leader].kill()
        try:
            answer = wait_until(lambda: register(outsider, '"bytes"', "v"), "a new leader to take a write",
                                timeout=60)
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer {last.get('answer')}") from None
        assert answer[1] == {"id": 4}, answer
        for k in (follower, outsider):
            wait_until(lambda: call_(f"{urls[k]}/schemas/ids/4")[0] == 200, f"node {k} to serve id 4")
            assert call_(f"{urls[k]}/subjects/s/versions/1")[1]["id"] == 1
    finally:
        c.stop()


def test_metrics_count_requests_and_schemas(registry_broker):
    """/metrics: requests by route and status, and the schemas held; promtool accepts it."""
    import subprocess

    from test_metrics import samples, scrape

    url = registry_broker.registry_url
    assert call(f"{url}/subjects/m/versions", "POST", {"schema": '"string"'})[0] == 200
    assert call(f"{url}/subjects/m/versions", "POST", {"schema": '"int"'})[0] == 409
    assert call(f"{url}/subjects/none/versions")[0] == 404
    text = scrape(registry_broker)
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
    assert check.returncode == 0, f"promtool: {check.stdout.decode()}{check.stderr.decode()}"
    # Route labels hold braces, which test_metrics' samples() does not parse.
    name = "samsa_schema_registry_requests_total"
    requests = {line[len(name):].rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith(name + "{")}
    route = 'method="POST",endpoint="/subjects/{subject}/versions"'
    assert requests[f'{{{route},status="200"}}'] == 1
    assert requests[f'{{{route},status="409"}}'] == 1
    assert requests['{method="GET",endpoint="/subjects/{subject}/versions",status="404"}'] == 1
    assert samples(text, "samsa_schema_registry_schemas")[""] == 1


def proto_order_class():
    """An Order message importing google/protobuf/timestamp.proto and a compat/money.proto,
    built at run time from descriptors (no protoc)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2
    from google.protobuf.message_factory import GetMessageClass
    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    money = descriptor_pb2.FileDescriptorProto(name="compat/money.proto", package="compat",
                                               syntax="proto3")
    m = money.message_type.add(name="Money")
    m.field.add(name="currency", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="units", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    order = descriptor_pb2.FileDescriptorProto(
        name="compat/order.proto", package="compat", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "compat/money.proto"])
    o = order.message_type.add(name="Order")
    o.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    o.field.add(name="at", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".google.protobuf.Timestamp")
    o.field.add(name="price", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".compat.Money")
    pool.Add(money)
    pool.Add(order)
    return GetMessageClass(pool.FindMessageTypeByName("compat.Order"))


PROTO_V1 = 'syntax = "proto3";\npackage compat.evolve;\nmessage Reading {\n  string sensor = 1;\n  int32 value = 2;\n}\n'


def proto(body, package="compat.evolve"):
    return f'syntax = "proto3";\npackage {package};\n{body}\n'


def test_protobuf_serializers_references_and_compatibility(registry_broker, topic_name):
    from confluent_kafka.schema_registry import Schema, SchemaReference
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    b, url = registry_broker, registry_broker.registry_url
    topic, subject, client, ctx = value_topic(registry_broker, topic_name)
    assert "PROTOBUF" in call(f"{url}/schemas/types")[1]

    # The serializer registers compat/money.proto as its own subject (the reference) and the
    # topic's schema with a reference to it; the well-known Timestamp is not registered.
    Order = proto_order_class()
    ser = ProtobufSerializer(Order, client)
    sent = []
    p = ck_producer(b.bootstrap)
    for i in range(3):
        msg = Order(id=f"o{i}")
        msg.at.seconds = 1_700_000_000 + i
        msg.price.currency, msg.price.units = "EUR", 100 * i
        sent.append(msg)
        p.produce(topic, value=ser(msg, ctx))
    assert p.flush(30) == 0
    assert sorted(client.get_subjects()) == sorted(["compat/money.proto", subject])
    latest = client.get_latest_version(subject)
    assert latest.schema.schema_type == "PROTOBUF"
    assert [(r.name, r.subject, r.version) for r in latest.schema.references] == \
        [("compat/money.proto", "compat/money.proto", 1)]
    # Stored as .proto text rendered from the descriptor the client sent.
    text = latest.schema.schema_str
    assert 'import "google/protobuf/timestamp.proto";' in text and "message Order {" in text, text
    # The same schema sent as that text is the same schema: same id, no new version.
    refs = [SchemaReference("compat/money.proto", "compat/money.proto", 1)]
    assert client.register_schema(subject, Schema(text, "PROTOBUF", refs)) == latest.schema_id
    assert client.get_versions(subject) == [1]

    # The deserializer fetches the writer's schema (?format=serialized) and its reference
    # (with a client of its own: this one cached the text registered above under the id).
    deser = ProtobufDeserializer(Order, {}, schema_registry_client=sr_client(url))
    got = [deser(r.value, ctx) for r in ck_consume(b.bootstrap, topic)]
    assert got == sent

    # A schema that does not compile: 42201 with the parser's message.
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema("proto-bad", Schema(proto("message M { strin a = 1; }"), "PROTOBUF"))
    assert invalid.value.error_code == 42201
    with pytest.raises(SchemaRegistryError) as unresolved:
        client.register_schema("proto-bad", Schema(proto('import "nowhere.proto";'), "PROTOBUF"))
    assert unresolved.value.error_code == 42201

    # Confluent's verdicts under BACKWARD, FORWARD and FULL.
    ev = "proto-evolve"
    reading = "message Reading {\n  string sensor = 1;\n  int32 value = 2;\n}"
    extra = "message Extra {\n  int32 x = 1;\n}"
    v1 = proto(reading + "\n" + extra)
    added_field = proto(reading.replace("int32 value = 2;", "int32 value = 2;\n  int64 at = 3;") + "\n" + extra)
    widened = proto(reading.replace("int32 value", "int64 value") + "\n" + extra)
    retyped = proto(reading.replace("int32 value", "string value") + "\n" + extra)
    message_removed = proto(reading)
    repackaged = proto(reading + "\n" + extra, package="compat.other")
    client.set_compatibility(ev, "BACKWARD")
    client.register_schema(ev, Schema(v1, "PROTOBUF"))

    def verdict(level, schema):
        client.set_compatibility(ev, level)
        return client.test_compatibility(ev, Schema(schema, "PROTOBUF"))

    for level in ("BACKWARD", "FORWARD", "FULL"):
        assert verdict(level, added_field), level
        assert verdict(level, widened), level
        assert not verdict(level, retyped), level
        assert not verdict(level, repackaged), level
    # Removing a message type: readers of the new schema lose it (BACKWARD refuses), readers
    # of the old one never needed more (FORWARD accepts).
    assert not verdict("BACKWARD", message_removed)
    assert verdict("FORWARD", message_removed)
    assert not verdict("FULL", message_removed)

    status, body = call(f"{url}/compatibility/subjects/{ev}/versions/latest?verbose=true",
                        "POST", {"schema": retyped, "schemaType": "PROTOBUF"})
    assert status == 200 and body["is_compatible"] is False
    assert "Difference{fullPath='#/Reading/2', type=FIELD_SCALAR_KIND_CHANGED}" in body["messages"]
    client.set_compatibility(ev, "BACKWARD")
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(ev, Schema(retyped, "PROTOBUF"))
    assert refused.value.error_code == 409
    assert client.register_schema(ev, Schema(added_field, "PROTOBUF")) > 0
    assert client.get_versions(ev) == [1, 2]


ORDER = {"type": "record", "name": "Order", "namespace": "compat",
         "fields": [{"name": "total", "type": "long"}]}


def produce_each(bootstrap, topic, values, linger_ms=0):
    """{index: delivery error or None} of values produced by a plain producer (no
    serializer, no retries): one batch per value with linger_ms 0, else one batch."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "retries": 0,
                  "enable.idempotence": False})
    outcome = {}
    for i, value in enumerate(values):
        p.produce(topic, value=value, on_delivery=lambda err, _m, i=i: outcome.__setitem__(i, err))
        if not linger_ms:
            assert p.flush(30) == 0
    assert p.flush(30) == 0
    return outcome


def test_validation_on_produce_refuses_records_without_a_registered_id(registry_broker, topic_name):
    """confluent.value.schema.validation: the AvroSerializer's records and tombstones pass;
    raw bytes, a wrong magic byte, unknown ids and another subject's id fail as
    INVALID_RECORD with the reason, and take their batch with them; kafka-configs switches
    validation on for a topic that had none; a soft-deleted version's id stops passing."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from jvm import run_tool
    from test_metrics import samples, scrape

    b = registry_broker
    client = sr_client(b.registry_url)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    topic = topic_name()
    created = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"confluent.value.schema.validation": "true"})])
    created[topic].result(30)
    configs = admin.describe_configs([ConfigResource("topic", topic)])
    configs = list(configs.values())[0].result(30)
    assert configs["confluent.value.schema.validation"].value == "true"
    assert configs["confluent.value.subject.name.strategy"].value == (
        "io.confluent.kafka.serializers.subject.TopicNameStrategy")

    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = AvroSerializer(client, json.dumps(USER_V1))
    good = [serialize({"name": "ada"}, ctx), serialize({"name": "bob"}, ctx)]
    assert produce_each(b.bootstrap, topic, [good[0], None, good[1]]) == {0: None, 1: None, 2: None}
    user_id = client.get_latest_version(f"{topic}-value").schema_id
    other_id = client.register_schema("elsewhere-value", Schema(json.dumps(ORDER), "AVRO"))

    def framed(schema_id, magic=0):
        return bytes([magic]) + schema_id.to_bytes(4, "big") + b"\x06ada"

    bad = [b"plain bytes", framed(user_id, magic=1), framed(0), framed(10**6), framed(other_id)]
    outcome = produce_each(b.bootstrap, topic, bad)
    assert {i: e.code() if e else None for i, e in outcome.items()} == \
        {i: KafkaError.INVALID_RECORD for i in range(len(bad))}, outcome
    # One good record batched with a bad one is refused with it: nothing of a batch is kept.
    mixed = produce_each(b.bootstrap, topic, [good[0], b"raw"], linger_ms=200)
    assert [e and e.code() for e in mixed.values()] == [KafkaError.INVALID_RECORD] * 2, mixed
    assert [r.value for r in ck_consume(b.bootstrap, topic)] == [good[0], None, good[1]]
    # librdkafka keeps only the code; Kafka's console producer (the Java client) reports
    # the record error the broker named, with its reason.
    sent = run_tool("kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic",
                    topic, input="plain\n", check=False)
    assert "Record value starts with magic byte 112, not the Confluent wire format's 0" in \
        sent.stdout + sent.stderr, sent

    # A topic without validation takes raw bytes until kafka-configs switches it on.
    plain = topic_name()
    ck_create_topic(b.bootstrap, plain, 1)
    assert produce_each(b.bootstrap, plain, [b"raw"]) == {0: None}
    run_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--alter", "--entity-type",
             "topics", "--entity-name", plain, "--add-config",
             "confluent.value.schema.validation=true")
    refused = produce_each(b.bootstrap, plain, [b"raw", framed(user_id)])
    assert refused[0].code() == KafkaError.INVALID_RECORD, refused
    # user_id is registered under the first topic's subject, not this one's.
    assert refused[1].code() == KafkaError.INVALID_RECORD, refused
    serialize_plain = AvroSerializer(client, json.dumps(USER_V1))
    value = serialize_plain({"name": "cy"}, SerializationContext(plain, MessageField.VALUE))
    assert produce_each(b.bootstrap, plain, [value]) == {0: None}
    assert [r.value for r in ck_consume(b.bootstrap, plain)] == [b"raw", value]

    # A soft-deleted version's id no longer passes for its subject (it still does for the
    # other topic's subject, which holds the same schema under the same id).
    assert client.delete_version(f"{topic}-value", 1) == 1
    assert produce_each(b.bootstrap, topic, [good[0]])[0].code() == KafkaError.INVALID_RECORD
    assert produce_each(b.bootstrap, plain, [framed(user_id)]) == {0: None}

    rejected = samples(scrape(b), "samsa_topic_records_rejected_by_schema_validation_total")
    # The bad values, the mixed batch's bad record, the console producer's line, the
    # deleted id.
    assert rejected[f'{{topic="{topic}"}}'] == len(bad) + 3
    assert rejected[f'{{topic="{plain}"}}'] == 2


def test_validation_needs_the_registry(bootstrap, topic_name):
    """On a broker without the registry, a topic cannot ask for validation: INVALID_CONFIG
    with the reason, rather than a topic that would refuse every record."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = topic_name()
    created = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"confluent.value.schema.validation": "true"})])
    with pytest.raises(KafkaException) as refused:
        created[topic].result(30)
    error = refused.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG, error
    assert "needs the schema registry" in error.str(), error
