"""SASL with real clients: kcat and confluent-kafka (librdkafka) authenticate with PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL, and a wrong password
is refused.

The broker is this module's own: the shared fixture cannot take extra config. Its users
are made with scripts/scram-credential.py, the tool the README documents, so the
config holds only SCRAM keys; the test checks no password reached the config or disk.
The TLS certificates come from the openssl command line tool.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from clients import WAIT_S, ck_producer, kcat
from conftest import EXTERNAL, REPO, SamsaBroker, free_port

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
USER, PASSWORD = "alice", "alice-Secr3t-pw"
SCRAM_TOOL = REPO / "scripts" / "scram-credential.py"


def scram_user_block(user: str, mechanism: str, password: str) -> str:
    out = subprocess.run([str(SCRAM_TOOL), user, mechanism], input=password.encode(),
                         stdout=subprocess.PIPE, check=True)
    return out.stdout.decode()


def make_certs(d: Path) -> dict:
    """A CA and a server certificate for localhost/127.0.0.1 signed by it."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=samsa compat CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class SecureBroker:
    def __init__(self, broker: SamsaBroker, sasl: str, sasl_ssl: str, ca: Path, config: Path):
        self.broker, self.sasl, self.sasl_ssl, self.ca, self.config = broker, sasl, sasl_ssl, ca, config

    def endpoint(self, protocol: str) -> str:
        return self.sasl if protocol == "SASL_PLAINTEXT" else self.sasl_ssl

    def conf(self, protocol: str, mechanism: str, password: str = PASSWORD) -> dict:
        """librdkafka properties for a client of `protocol` logging in as USER."""
        conf = {"security.protocol": protocol, "sasl.mechanisms": mechanism,
                "sasl.username": USER, "sasl.password": password}
        if protocol == "SASL_SSL":
            conf["ssl.ca.location"] = str(self.ca)
        return conf


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    if EXTERNAL:
        pytest.skip("needs a samsa the suite configures (COMPAT_BOOTSTRAP is set)")
    d = tmp_path_factory.mktemp("secure")
    certs = make_certs(d)
    sasl_port, ssl_port = free_port(), free_port()
    users = "".join(scram_user_block(USER, m, PASSWORD) for m in ("SCRAM-SHA-256", "SCRAM-SHA-512"))
    config = d / "samsa.toml"
    config.write_text(
        f'[[listener]]\nname = "sasl"\naddress = "127.0.0.1:{sasl_port}"\nprotocol = "SASL_PLAINTEXT"\n'
        f'[[listener]]\nname = "sasl_ssl"\naddress = "127.0.0.1:{ssl_port}"\nprotocol = "SASL_SSL"\n'
        f'advertised = "localhost:{ssl_port}"\n'
        f'[tls]\ncert_file = "{certs["cert"]}"\nkey_file = "{certs["key"]}"\n'
        f'[sasl]\nmechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]\n{users}')
    b = SamsaBroker(d / "data", config=config).start()
    try:
        yield SecureBroker(b, f"127.0.0.1:{sasl_port}", f"localhost:{ssl_port}", certs["ca"], config)
    finally:
        b.stop_clean()


def kcat_args(conf: dict) -> list:
    return [a for k, v in conf.items() for a in ("-X", f"{k}={v}")]


def fresh_topic(tag: str) -> str:
    return f"security-{tag}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_produces_and_consumes(secure, protocol, mechanism):
    conf = kcat_args(secure.conf(protocol, mechanism))
    bootstrap = secure.endpoint(protocol)
    topic = fresh_topic(f"kcat-{mechanism}")
    lines = [f"k{i}:v{i}-{mechanism}" for i in range(5)]
    kcat(bootstrap, *conf, "-P", "-t", topic, "-K:", "-X", "acks=all",
         input="".join(l + "\n" for l in lines).encode())
    out = kcat(bootstrap, *conf, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k:%s\n").stdout
    assert out.decode().splitlines() == lines


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_produces_and_consumes(secure, protocol, mechanism):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    conf = secure.conf(protocol, mechanism)
    bootstrap = secure.endpoint(protocol)
    topic = fresh_topic(f"ck-{mechanism}")
    producer = ck_producer(bootstrap, **conf)
    errors = []
    for i in range(10):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(),
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(WAIT_S) == 0 and not errors, errors
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "samsa-compat-unused",
                         "enable.auto.commit": False, "enable.partition.eof": True, **conf})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, deadline = [], time.monotonic() + WAIT_S
        while len(got) < 10 and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=100, timeout=0.5):
                if m.error() is None:
                    got.append((m.key(), m.value()))
        assert got == [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
    finally:
        consumer.close()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_is_refused(secure, protocol, mechanism):
    from confluent_kafka import KafkaError, Producer
    conf = secure.conf(protocol, mechanism, password="not-" + PASSWORD)
    errors = []
    producer = Producer({"bootstrap.servers": secure.endpoint(protocol), "error_cb": errors.append, **conf})
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)  # serves error_cb
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert "Authentication failed" in errors[0].str()
    p = kcat(secure.endpoint(protocol), *kcat_args(conf), "-L", "-m", "5", check=False, timeout=30)
    assert p.returncode != 0, p.stdout
    assert b"Authentication failed" in p.stderr


def test_no_password_reaches_the_config_or_the_data_dir(secure):
    assert PASSWORD not in secure.config.read_text()
    # Configured users live in the config alone; the metadata log (its entries and
    # snapshots) keeps the credentials changed through the API, never a password.
    files = [p for p in secure.broker.data_dir.rglob("*") if p.is_file()]
    assert any("__cluster_metadata" in str(p) for p in files), "the metadata log is missing"
    for path in files:
        assert PASSWORD.encode() not in path.read_bytes(), path
