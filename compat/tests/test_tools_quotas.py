"""kafka-configs on client quotas (DescribeClientQuotas and AlterClientQuotas): users,
client ids, both, and ips, named and default; --describe, --add-config, --delete-config;
the refusals the broker words; and, against samsa, quotas kept across a restart.

Named entities are unique per run. The default entities are shared by every test of the
broker, so their values are far above any rate a test reaches, and they are removed again."""

from __future__ import annotations

import re
import uuid

from jvm import run_tool

# "Quota configs for user-principal 'alice', client-id 'app' are k=v, k=v"
DESCRIBED = re.compile(r"^Quota configs for (.+) are (.+)$")


def configs(bootstrap: str, *entity: str, alter: list[str] | None = None) -> str:
    """kafka-configs on a client-quota entity: --describe, or --alter with `alter`'s options."""
    action = ["--alter", *alter] if alter is not None else ["--describe"]
    return run_tool("kafka-configs", "--bootstrap-server", bootstrap, *entity, *action).stdout


def described(bootstrap: str, *entity: str) -> dict[str, dict[str, float]]:
    """--describe's lines as {entity words: {key: value}} (the tool prints a map's order)."""
    out = configs(bootstrap, *entity)
    got = {}
    for line in out.splitlines():
        m = DESCRIBED.match(line)
        if m:
            got[m[1]] = {k: float(v) for k, v in (kv.split("=") for kv in m[2].split(", "))}
    return got


def user(name: str) -> list[str]:
    return ["--entity-type", "users", "--entity-name", name]


def client(name: str) -> list[str]:
    return ["--entity-type", "clients", "--entity-name", name]


def test_tools_client_quotas(bootstrap):
    tag = uuid.uuid4().hex[:8]
    alice, app, ip = f"alice-{tag}", f"app-{tag}", "192.0.2.77"
    default_user = ["--entity-type", "users", "--entity-default"]
    default_client = ["--entity-type", "clients", "--entity-default"]
    ips = ["--entity-type", "ips", "--entity-name", ip]
    out = configs(bootstrap, *user(alice),
                  alter=["--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152"])
    assert f"Completed updating config for user {alice}." in out, out
    configs(bootstrap, *user(alice), *client(app), alter=["--add-config", "request_percentage=50.5"])
    configs(bootstrap, *client(app), alter=["--add-config", "controller_mutation_rate=12"])
    configs(bootstrap, *ips, alter=["--add-config", "connection_creation_rate=30"])
    out = configs(bootstrap, *default_user, *default_client,
                  alter=["--add-config", "consumer_byte_rate=1000000000000"])
    assert "Completed updating default config for users in the cluster." in out, out
    try:
        assert described(bootstrap, *user(alice)) == {
            f"user-principal '{alice}'": {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}}
        assert described(bootstrap, *user(alice), "--entity-type", "clients") == {
            f"user-principal '{alice}', client-id '{app}'": {"request_percentage": 50.5}}
        assert described(bootstrap, *client(app)) == {
            f"client-id '{app}'": {"controller_mutation_rate": 12.0}}
        assert described(bootstrap, "--entity-type", "ips", "--entity-name", ip) == {
            f"ip '{ip}'": {"connection_creation_rate": 30.0}}
        assert described(bootstrap, *default_user, *default_client) == {
            "the default user-principal, the default client-id": {"consumer_byte_rate": 1e12}}
        # Every user entity, our named one among them.
        assert f"user-principal '{alice}'" in described(bootstrap, "--entity-type", "users")

        out = configs(bootstrap, *user(alice), alter=["--delete-config", "producer_byte_rate"])
        assert f"Completed updating config for user {alice}." in out, out
        assert described(bootstrap, *user(alice)) == {
            f"user-principal '{alice}'": {"consumer_byte_rate": 2097152.0}}
        # The last key gone, the entity is gone.
        configs(bootstrap, *user(alice), alter=["--delete-config", "consumer_byte_rate"])
        assert described(bootstrap, *user(alice)) == {}

        # The broker's refusals, in Kafka's words.
        refused = run_tool("kafka-configs", "--bootstrap-server", bootstrap, *user(alice), "--alter",
                           "--add-config", "producer_byte_rate=1.5", check=False)
        assert refused.returncode != 0, refused
        assert "InvalidRequestException: producer_byte_rate cannot be a fractional value." in refused.stderr, \
            refused.stderr
        refused = run_tool("kafka-configs", "--bootstrap-server", bootstrap, *user(alice), "--alter",
                           "--add-config", "request_percentage=0", check=False)
        assert "Quota request_percentage must be greater than 0" in refused.stderr, refused.stderr
        assert described(bootstrap, *user(alice)) == {}
    finally:
        configs(bootstrap, *default_user, *default_client, alter=["--delete-config", "consumer_byte_rate"])
        configs(bootstrap, *ips, alter=["--delete-config", "connection_creation_rate"])
        configs(bootstrap, *client(app), alter=["--delete-config", "controller_mutation_rate"])
        configs(bootstrap, *user(alice), *client(app), alter=["--delete-config", "request_percentage"])
    assert described(bootstrap, *default_user, *default_client) == {}
    assert described(bootstrap, "--entity-type", "ips", "--entity-name", ip) == {}


def test_client_quotas_survive_a_restart(own_broker):
    b = own_broker
    configs(b.bootstrap, *user("carol"), alter=["--add-config", "producer_byte_rate=4096"])
    configs(b.bootstrap, "--entity-type", "ips", "--entity-default",
            alter=["--add-config", "connection_creation_rate=1000000"])
    b.restart()
    assert described(b.bootstrap, *user("carol")) == {"user-principal 'carol'": {"producer_byte_rate": 4096.0}}
    assert described(b.bootstrap, "--entity-type", "ips", "--entity-default") == {
        "the default ip": {"connection_creation_rate": 1e6}}
