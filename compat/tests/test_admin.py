"""Admin APIs through each client: DescribeCluster, CreatePartitions,
DescribeConfigs and DeleteTopics (CreateTopics is in every other test)."""

import pytest

from clients import ck_admin, ck_create_topic, kafkajs, kp_create_topic, js_create_topic, wait_until


def ck_partitions(admin, topic):
    md = admin.list_topics(topic, timeout=10).topics.get(topic)
    return None if md is None or md.error is not None else len(md.partitions)


def ck_topic_listed(admin, topic):
    return topic in admin.list_topics(timeout=10).topics


def host_port(bootstrap):
    host, _, port = bootstrap.rpartition(":")
    return host, int(port)


# -- confluent-kafka ---------------------------------------------------------

def test_confluent_describe_cluster(bootstrap):
    admin = ck_admin(bootstrap)
    d = admin.describe_cluster(request_timeout=10).result(timeout=30)
    assert d.cluster_id, d
    assert [(n.host, n.port) for n in d.nodes] == [host_port(bootstrap)]
    assert d.controller is not None and d.controller.id == d.nodes[0].id


def test_confluent_create_partitions(bootstrap, topic_name):
    from confluent_kafka.admin import NewPartitions
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 2)
    admin = ck_admin(bootstrap)
    admin.create_partitions([NewPartitions(topic, 5)], request_timeout=30)[topic].result(timeout=30)
    wait_until(lambda: ck_partitions(admin, topic) == 5, f"{topic} to have 5 partitions")
    # Shrinking is refused.
    with pytest.raises(Exception):
        admin.create_partitions([NewPartitions(topic, 3)], request_timeout=30)[topic].result(timeout=30)
    assert ck_partitions(admin, topic) == 5


def test_confluent_describe_topic_configs(bootstrap, topic_name):
    from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType
    topic = topic_name()
    admin = ck_admin(bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "123456789"})],
                        request_timeout=30)[topic].result(timeout=30)
    res = ConfigResource(ResourceType.TOPIC, topic)
    cfg = admin.describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert cfg["retention.ms"].value == "123456789", cfg.get("retention.ms")
    assert "cleanup.policy" in cfg, sorted(cfg)


def test_confluent_delete_topics(bootstrap, topic_name):
    topic = topic_name()
    ck_create_topic(bootstrap, topic, 2)
    admin = ck_admin(bootstrap)
    admin.delete_topics([topic], request_timeout=30)[topic].result(timeout=30)
    wait_until(lambda: not ck_topic_listed(admin, topic), f"{topic} to disappear from metadata")
    with pytest.raises(Exception):  # already gone: UNKNOWN_TOPIC_OR_PARTITION
        admin.delete_topics([topic], request_timeout=30)[topic].result(timeout=30)


# -- kafka-python --------------------------------------------------------------

@pytest.fixture
def kp_admin(bootstrap):
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="samsa-compat")
    yield a
    a.close()


def test_kafka_python_describe_cluster(bootstrap, kp_admin):
    d = kp_admin.describe_cluster()
    assert d["cluster_id"], d
    assert [(b["host"], b["port"]) for b in d["brokers"]] == [host_port(bootstrap)]
    assert d["controller_id"] == d["brokers"][0]["broker_id"]


def test_kafka_python_partitions_configs_delete(bootstrap, kp_admin, topic_name):
    from kafka.admin import ConfigResource, ConfigResourceType
    topic = topic_name()
    kp_create_topic(bootstrap, topic, 1)
    kp_admin.create_partitions({topic: 3})
    wait_until(lambda: len(kp_admin.describe_topics([topic])[0]["partitions"]) == 3, f"{topic} to have 3 partitions")
    cfg = kp_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    assert "cleanup.policy" in str(cfg), cfg
    kp_admin.delete_topics([topic])
    wait_until(lambda: topic not in kp_admin.list_topics(), f"{topic} to disappear")


# -- kafkajs -----------------------------------------------------------------

def test_kafkajs_admin(bootstrap, topic_name):
    topic = topic_name()
    js_create_topic(bootstrap, topic, 1)
    cluster = kafkajs("admin", bootstrap, op="describeCluster")
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [host_port(bootstrap)]
    assert cluster["controller"] == cluster["brokers"][0]["nodeId"]
    assert cluster["clusterId"]

    kafkajs("admin", bootstrap, op="createPartitions", args={"topicPartitions": [{"topic": topic, "count": 4}]})
    md = kafkajs("metadata", bootstrap, topics=[topic])
    assert sorted(p["partitionId"] for p in md["topics"][0]["partitions"]) == [0, 1, 2, 3]

    cfg = kafkajs("admin", bootstrap, op="describeConfigs",
                  args={"resources": [{"type": 2, "name": topic}], "includeSynonyms": False})
    names = {e["configName"]: e["configValue"] for e in cfg["resources"][0]["configEntries"]}
    assert "cleanup.policy" in names, sorted(names)

    kafkajs("admin", bootstrap, op="deleteTopics", args={"topics": [topic]})
    wait_until(lambda: topic not in kafkajs("admin", bootstrap, op="listTopics"), f"{topic} to disappear")
