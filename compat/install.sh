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

say "ok: $(kcat -V 2>&1 | grep -o "librdkafka [0-9.]*" | head -1) (kcat)," \
  "$("$PY" -c 'import confluent_kafka as c, kafka; print("confluent-kafka", c.version(), "librdkafka", c.libversion()[0] + ",", "kafka-python", kafka.__version__)')," \
  "kafkajs $(cd "$HERE/js" && node -p 'require("kafkajs/package.json").version')"
