#!/usr/bin/env bash
# Installs the real Kafka clients the compat suite drives. Idempotent and fast
# when everything is already there; exits non-zero, saying what is missing,
# if any client cannot be installed. Never skips a client.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"

die() { echo "compat/install.sh: ERROR: $*" >&2; exit 1; }
say() { echo "compat/install.sh: $*"; }

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; cannot install $*"
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# --- kcat (Debian's build on librdkafka 2.0: an old, strict client on purpose) ---
if ! command -v kcat >/dev/null; then
  say "installing kcat from Debian"
  apt_install kcat
fi
command -v kcat >/dev/null || die "kcat still not on PATH after apt-get install kcat"
kcat -V 2>&1 | grep -q "librdkafka" || die "kcat -V does not run: $(kcat -V 2>&1 | head -3)"

# --- promtool (checks the metrics text) and openssl (makes the TLS tests' CA) ---
if ! command -v promtool >/dev/null; then
  say "installing promtool (Debian's prometheus package)"
  apt_install prometheus
fi
command -v promtool >/dev/null || die "promtool not on PATH after apt-get install prometheus"
if ! command -v openssl >/dev/null; then
  say "installing openssl from Debian"
  apt_install openssl
fi
command -v openssl >/dev/null || die "openssl not on PATH after apt-get install openssl"

# --- iproute2: the cluster tests cut a broker off in a network namespace of its own ---
if ! command -v ip >/dev/null; then
  say "installing iproute2 from Debian"
  apt_install iproute2
fi
command -v ip >/dev/null || die "ip not on PATH after apt-get install iproute2"
ns="samsa-probe-$$"
ip netns add "$ns" 2>/dev/null && ip netns del "$ns" \
  || die "cannot create network namespaces (ip netns add): the cluster tests need root and CAP_NET_ADMIN"

# --- Python clients (pinned in requirements.txt) ---
command -v "$PY" >/dev/null || die "$PY not found"
if ! "$PY" - "$HERE/requirements.txt" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYEOF
then
  say "pip install -r compat/requirements.txt"
  "$PY" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt" \
    || die "pip install -r $HERE/requirements.txt failed"
fi
"$PY" - <<'PYEOF' || die "a Python client or codec does not import (see above)"
import confluent_kafka, kafka, kafka.codec as codec, pytest_timeout  # noqa: F401
import snappy, lz4.frame, zstandard  # noqa: F401
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: F401
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: F401
from confluent_kafka.schema_registry.json_schema import JSONSerializer  # noqa: F401
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: F401
missing = [c for c in ("gzip", "snappy", "lz4", "zstd") if not getattr(codec, f"has_{c}")()]
assert not missing, f"kafka-python lacks codecs: {missing}"
PYEOF

# --- kafkajs (Node, versions locked in compat/js/package-lock.json) ---
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing node and npm from Debian"
  apt_install nodejs npm
fi
command -v node >/dev/null && command -v npm >/dev/null || die "node/npm not found"
stamp="$HERE/js/node_modules/.samsa-compat-lock.sha256"
want="$(sha256sum "$HERE/js/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "npm ci in compat/js"
  (cd "$HERE/js" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $HERE/js failed"
  echo "$want" > "$stamp"
fi
(cd "$HERE/js" && node -e '
  require("kafkajs"); require("snappy"); require("lz4-napi"); require("@mongodb-js/zstd");
') || die "kafkajs or one of its codecs (snappy, lz4-napi, @mongodb-js/zstd) does not load"

# --- Java client and Kafka's tools (Maven; versions in compat/java/pom.xml) ---
# Each profile's runtime classpath goes to compat/java/.cache/classpath-<profile>.txt;
# the tests compile the driver against it. Maven runs only when pom.xml or the
# reference Kafka version changed since the last resolution.
if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
  say "installing a JDK from Debian"
  apt_install default-jdk-headless
fi
if ! command -v mvn >/dev/null; then
  say "installing Maven from Debian"
  apt_install maven
fi
command -v javac >/dev/null && command -v mvn >/dev/null || die "javac/mvn not found"
JAVA_DIR="$HERE/java"
tools_version="$("$PY" "$HERE/reference/kafka_ref.py" version)" || die "cannot read the Kafka version from compat/reference/pom.xml"
java_want="$( (cat "$JAVA_DIR/pom.xml"; echo "kafka.tools.version=$tools_version") | sha256sum | cut -d' ' -f1)"
java_stamp="$JAVA_DIR/.cache/classpaths.sha256"
java_profiles="kafka-4 kafka-3 streams tools"
java_fresh=1
[ -f "$java_stamp" ] && [ "$(cat "$java_stamp")" = "$java_want" ] || java_fresh=0
jars_present() { [ -s "$1" ] && tr ':' '\n' < "$1" | while read -r jar; do [ -f "$jar" ] || exit 1; done; }
for p in $java_profiles; do jars_present "$JAVA_DIR/.cache/classpath-$p.txt" || java_fresh=0; done
if [ "$java_fresh" = 0 ]; then
  mkdir -p "$JAVA_DIR/.cache"
  rm -f "$java_stamp"
  for p in $java_profiles; do
    say "mvn dependency:build-classpath -P $p in compat/java"
    rm -f "$JAVA_DIR/.cache/classpath-$p.txt"
    if ! out="$(mvn -q -B -Dstyle.color=never -f "$JAVA_DIR/pom.xml" -P "$p" \
                  -Dkafka.tools.version="$tools_version" dependency:build-classpath 2>&1)"; then
      echo "$out" | tail -40 >&2
      die "Maven could not resolve the compat/java profile $p"
    fi
  done
  echo "$java_want" > "$java_stamp"
fi
for p in $java_profiles; do
  jars_present "$JAVA_DIR/.cache/classpath-$p.txt" || die "compat/java/.cache/classpath-$p.txt is empty or lists a missing jar after Maven"
done
grep -q "kafka-clients-3.0.0.jar" "$JAVA_DIR/.cache/classpath-kafka-3.txt" || die "profile kafka-3 lacks kafka-clients 3.0.0"
grep -q "kafka-tools-$tools_version.jar" "$JAVA_DIR/.cache/classpath-tools.txt" || die "profile tools lacks kafka-tools $tools_version"

# --- Go clients (franz-go, sarama, kafka-go; locked in compat/go/go.sum) ---
command -v go >/dev/null || die "go not found: compat/go needs Go $(sed -n 's/^go //p' "$HERE/go/go.mod") or newer on PATH"
(cd "$HERE/go" && GOFLAGS=-mod=readonly go mod download) || die "go mod download in $HERE/go failed"

say "ok: $(kcat -V 2>&1 | grep -o "librdkafka [0-9.]*" | head -1) (kcat)," \
  "$("$PY" -c 'import confluent_kafka as c, kafka; print("confluent-kafka", c.version(), "librdkafka", c.libversion()[0] + ",", "kafka-python", kafka.__version__)')," \
  "kafkajs $(cd "$HERE/js" && node -p 'require("kafkajs/package.json").version'),"\
  "kafka-clients 3.0.0 and $(grep -o 'kafka-clients-4[0-9.]*[0-9]' "$JAVA_DIR/.cache/classpath-kafka-4.txt" | head -1 | sed 's/kafka-clients-//')," \
  "kafka-tools $tools_version, $(cd "$HERE/go" && go list -m -f '{{.Path}} {{.Version}}' github.com/twmb/franz-go github.com/IBM/sarama github.com/segmentio/kafka-go | sed 's|github.com/[^/]*/||' | paste -sd, - | sed 's/,/, /g')"
