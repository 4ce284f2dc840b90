#!/usr/bin/env bash
# Regenerates vendor/kafka-protocol/src/messages{,.rs} from the message definitions of a
# Kafka release, with the kafka-protocol crate's own generator (see
# vendor/kafka-protocol/PATCHED.md for why and what else differs from upstream).
#
#   scripts/regenerate-kafka-protocol.sh [KAFKA_VERSION]     (default 4.4.0)
#
# Kafka's definitions come from the kafka-clients jar on Maven Central
# (common/message/*.json), the generator from the crate's repository at the commit whose
# output for Kafka 4.1.0 is exactly the published 0.18.0 crate's. The generator clones
# Kafka's git repository to find the definitions; the only change made to it here is to
# read them from a directory instead (KAFKA_MESSAGES), so no Kafka checkout is needed.
set -euo pipefail

KAFKA_VERSION=${1:-4.4.0}
GENERATOR_REPO=${GENERATOR_REPO:-https://github.com/tychedelia/kafka-protocol-rs.git}
GENERATOR_COMMIT=66f7de6f3bae527addd7bd351124185ba5d31d8c
MAVEN=https://repo1.maven.org/maven2/org/apache/kafka/kafka-clients

root=$(cd "$(dirname "$0")/.." && pwd)
vendored=$root/vendor/kafka-protocol
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "kafka-clients $KAFKA_VERSION: message definitions"
jar=$work/kafka-clients.jar
curl -sSfL -o "$jar" "$MAVEN/$KAFKA_VERSION/kafka-clients-$KAFKA_VERSION.jar"
mkdir -p "$work/definitions"
(cd "$work/definitions" && unzip -q "$jar" 'common/message/*.json')

echo "generator at $GENERATOR_COMMIT"
git clone -q "$GENERATOR_REPO" "$work/generator"
git -C "$work/generator" checkout -q "$GENERATOR_COMMIT"
cd "$work/generator"
# Its toolchain pin is older than ours; any recent stable compiles the generator.
rm -f rust-toolchain.toml
python3 - <<'EOF'
import re
path = "protocol_codegen/src/main.rs"
src = open(path).read()
start = src.index("    // Download messages from head of Kafka repo")
end = src.index("    // Clear output directory")
src = (src[:start]
       + '    let kafka_repo = Path::new(&std::env::var("KAFKA_MESSAGES").unwrap()).to_path_buf();\n'
       + src[end:])
src = src.replace("use git2::{Oid, Repository};\n", "")
src = src.replace('kafka_repo.join("clients/src/main/resources/common/message")', "kafka_repo.clone()")
open(path, "w").write(src)
manifest = "protocol_codegen/Cargo.toml"
text = re.sub(r'git2 = .*\n', "", open(manifest).read())
open(manifest, "w").write(text)
EOF
cargo build -q -p protocol_codegen
# The generator writes into ../../src/messages relative to its own source, and formats it.
KAFKA_MESSAGES=$work/definitions/common/message ./target/debug/protocol_codegen >/dev/null

echo "copying into $vendored"
rm -f "$vendored"/src/messages/*.rs
cp src/messages/*.rs "$vendored/src/messages/"
cp src/messages.rs "$vendored/src/messages.rs"
echo "done: review with git diff --stat vendor/kafka-protocol"
