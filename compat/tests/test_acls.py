"""ACLs with real clients (samsa only: the broker is configured with an authorizer).

Three users log in with SCRAM-SHA-512 over SASL_PLAINTEXT: `admin` is a super user,
`viewer` has DESCRIBE on the topic only, `stranger` has nothing. The admin creates the
topic, produces, and grants the ACLs through confluent-kafka's AdminClient (CreateAcls);
the viewer sees the topic's metadata but is refused when it reads; the stranger does not
even see the topic; kcat as the viewer gets the authorization error.
"""

from __future__ import annotations

import subprocess

import pytest

from clients import WAIT_S, kcat
from conftest import EXTERNAL, REPO, SamsaBroker, free_port

SCRAM_TOOL = REPO / "scripts" / "scram-credential.py"
USERS = {"admin": "admin-pw-1", "viewer": "viewer-pw-2", "stranger": "stranger-pw-3"}
TOPIC = "guarded"


def user_block(name: str) -> str:
    return subprocess.run([str(SCRAM_TOOL), name, "SCRAM-SHA-512"], input=USERS[name].encode(),
                          stdout=subprocess.PIPE, check=True).stdout.decode()


@pytest.fixture(scope="module")
def authorized(tmp_path_factory):
    if EXTERNAL:
        pytest.skip("needs a samsa the suite configures (COMPAT_BOOTSTRAP is set)")
    d = tmp_path_factory.mktemp("acls")
    port = free_port()
    config = d / "samsa.toml"
    config.write_text(
        'authorizer = true\nsuper_users = ["User:admin"]\n'
        f'[[listener]]\nname = "sasl"\naddress = "127.0.0.1:{port}"\nprotocol = "SASL_PLAINTEXT"\n'
        '[sasl]\nmechanisms = ["SCRAM-SHA-512"]\n' + "".join(user_block(u) for u in USERS))
    b = SamsaBroker(d / "data", config=config).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        b.stop_clean()


def conf(bootstrap: str, user: str) -> dict:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": USERS[user]}


def topics_seen(bootstrap: str, user: str) -> dict:
    from confluent_kafka.admin import AdminClient
    return AdminClient(conf(bootstrap, user)).list_topics(timeout=WAIT_S).topics


def test_read_needs_read_describe_shows_metadata_super_user_does_all(authorized):
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)

    bootstrap = authorized
    admin = AdminClient(conf(bootstrap, "admin"))
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])[TOPIC].result(WAIT_S)
    p = Producer({**conf(bootstrap, "admin"), "enable.idempotence": False, "acks": "all"})
    for i in range(10):
        p.produce(TOPIC, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(WAIT_S) == 0, "the super user could not produce"

    # Before any ACL the viewer sees nothing of the topic.
    assert TOPIC not in topics_seen(bootstrap, "viewer")
    describe_only = AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:viewer", "*",
                               AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    # The consumer's group is allowed, so the refusal can only be about the topic.
    group_read = AclBinding(ResourceType.GROUP, "viewers", ResourcePatternType.LITERAL, "User:viewer", "*",
                            AclOperation.READ, AclPermissionType.ALLOW)
    for fut in admin.create_acls([describe_only, group_read]).values():
        fut.result(WAIT_S)

    seen = topics_seen(bootstrap, "viewer")
    assert TOPIC in seen and seen[TOPIC].error is None, "DESCRIBE must show the topic's metadata"
    assert TOPIC not in topics_seen(bootstrap, "stranger"), "a principal without ACLs must not see the topic"

    c = Consumer({**conf(bootstrap, "viewer"), "group.id": "viewers", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    refused = None
    for _ in range(20):
        m = c.poll(WAIT_S / 10)
        if m is None:
            continue
        assert m.error() is not None, f"the viewer read a record without READ: {m.value()!r}"
        refused = m.error()
        break
    c.close()
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused

    out = kcat(bootstrap, *sum((["-X", f"{k}={v}"] for k, v in conf(bootstrap, "viewer").items()
                                if k != "bootstrap.servers"), []),
               "-C", "-t", TOPIC, "-o", "beginning", "-e", check=False)
    assert out.returncode != 0 and b"authoriz" in out.stderr.lower(), out.stderr.decode()

    # The super user reads everything.
    c = Consumer({**conf(bootstrap, "admin"), "group.id": "admins", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    got = []
    while len(got) < 10:
        m = c.poll(WAIT_S)
        assert m is not None and m.error() is None, m and m.error()
        got.append(m.value())
    c.close()
    assert got == [f"v{i}".encode() for i in range(10)]
