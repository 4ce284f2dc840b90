"""TLS listeners with real clients (samsa only: the listener is configured per process).

A throwaway CA and certificates are made with the openssl CLI. kcat (librdkafka 2.0)
and confluent-kafka (librdkafka 2.16) produce and consume over an SSL listener that
runs beside the plaintext one, verifying the broker's certificate and host name; with
client_ca_file set, a client without a certificate is refused and one with a
certificate signed by the CA is served.
"""

import subprocess
from pathlib import Path

import pytest

from clients import WAIT_S, kcat
from conftest import REPO, SamsaBroker, free_port


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True)
    assert p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr.decode()}"


def make_pki(d: Path) -> dict:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=samsa test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, san in [("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:client")]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return {n: str(d / n) for n in ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"]}


@pytest.fixture
def tls_broker(tmp_path, request):
    mutual = getattr(request, "param", False)
    pki = make_pki(tmp_path)
    ssl_port = free_port()
    config = tmp_path / "samsa.toml"
    config.write_text((REPO / "etc" / "samsa.toml").read_text() + f"""
[[listener]]
name = "secure"
address = "127.0.0.1:{ssl_port}"
protocol = "SSL"

[tls]
cert_file = "{pki['server.pem']}"
key_file = "{pki['server.key']}"
{f'client_ca_file = "{pki["ca.pem"]}"' if mutual else ''}
""")
    b = SamsaBroker(tmp_path / "data", config=config).start()
    try:
        yield b, f"127.0.0.1:{ssl_port}", pki
    finally:
        b.stop_clean()


def ssl_conf(pki, with_client_cert=False) -> dict:
    conf = {"security.protocol": "ssl", "ssl.ca.location": pki["ca.pem"]}
    if with_client_cert:
        conf.update({"ssl.certificate.location": pki["client.pem"], "ssl.key.location": pki["client.key"]})
    return conf


def kcat_args(conf: dict) -> list:
    return [a for k, v in conf.items() for a in ("-X", f"{k}={v}")]


def test_kcat_and_confluent_over_tls(tls_broker, topic_name):
    from confluent_kafka import Consumer, Producer, TopicPartition

    _, bootstrap, pki = tls_broker
    conf = ssl_conf(pki)
    topic = topic_name()
    lines = [f"k{i}:v{i}" for i in range(200)]
    kcat(bootstrap, *kcat_args(conf), "-t", topic, "-P", "-K:", input="\n".join(lines).encode())
    listed = kcat(bootstrap, *kcat_args(conf), "-L", "-t", topic).stdout.decode()
    # Clients of the SSL listener are told the SSL listener's address.
    assert f"at {bootstrap}" in listed, listed

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all", **conf})
    for i in range(200, 400):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert p.flush(WAIT_S) == 0

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "enable.auto.commit": False,
                  **conf})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < 400:
        m = c.poll(WAIT_S)
        assert m is not None, f"only {len(got)} of 400 records read over TLS"
        assert m.error() is None, m.error()
        got.append(f"{m.key().decode()}:{m.value().decode()}")
    c.close()
    assert got == [f"k{i}:v{i}" for i in range(400)]

    out = kcat(bootstrap, *kcat_args(conf), "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s\n")
    assert out.stdout.decode().splitlines() == got


@pytest.mark.parametrize("tls_broker", [True], indirect=True)
def test_mutual_tls_needs_a_client_certificate(tls_broker, topic_name):
    _, bootstrap, pki = tls_broker
    refused = kcat(bootstrap, *kcat_args(ssl_conf(pki)), "-L", "-m", "5", check=False, timeout=60)
    assert refused.returncode != 0, "a client without a certificate was served"
    served = kcat(bootstrap, *kcat_args(ssl_conf(pki, with_client_cert=True)), "-L")
    assert f"at {bootstrap}" in served.stdout.decode()
