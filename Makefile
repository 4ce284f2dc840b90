# samsa: the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
SAMSA_DEBUG := target/debug/samsa

.PHONY: run cluster build test test-deps lint unit protocol-tests compat bench-smoke clean

## Build and start one broker on 127.0.0.1:9092 with etc/samsa.toml, data under ./data.
run:
	$(CARGO) run --release --bin samsa -- --config etc/samsa.toml --data-dir ./data

## Build and start a three-node cluster on this machine (etc/cluster/, data under ./data/cluster).
cluster: build
	bash scripts/cluster.sh

build:
	$(CARGO) build --release --bin samsa

## Install what the tests need (if missing), build, and run every test suite; the end of
## the output says how long each phase took (scripts/test-phases.sh).
TEST_PHASES := test-deps lint unit protocol-tests compat nemesis-short bench-smoke
test:
	bash scripts/test-phases.sh $(TEST_PHASES)

test-deps:
	bash compat/install.sh

## rustfmt's layout and clippy without a warning, the bench crate included (which is why
## it needs the bench's build dependencies). vendor/ is outside the workspace, so neither
## looks at the patched third-party code there.
lint: bench-build-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

$(SAMSA_DEBUG): FORCE
	$(CARGO) build --bin samsa

FORCE:

## Unit tests of every crate in the workspace (storage, config, protocol framing, ...).
## The bench crate (librdkafka built from source) is built and run by bench-smoke instead.
unit:
	$(CARGO) test --workspace --exclude samsa-protocol-tests --exclude samsa-bench

## Wire-level tests: the broker binary driven by requests encoded with kafka-protocol,
## including the differential suite against one Apache Kafka that run.sh starts and stops.
protocol-tests: $(SAMSA_DEBUG)
	SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash protocol-tests/run.sh

## Real clients (kcat, confluent-kafka, kafka-python, kafkajs) against a real broker process.
compat: $(SAMSA_DEBUG)
	SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash compat/run.sh

## Fault injection (README, "Nemesis"): a three-node cluster under a seeded schedule of
## SIGKILLs, SIGSTOP pauses, network partitions and restarts while idempotent and
## transactional producers write and a group reads, then a Jepsen-style check; a plain and
## a transactional run. Needs root (network namespaces). The short form (make test): 7
## faults a run, one of each kind, under a random seed it prints; NEMESIS_SEED=<seed>
## replays one. The long form soaks (a release build: cargo build --release first):
##   make nemesis NEMESIS_FAULTS=200 NEMESIS_SEED=42 [NEMESIS_BIN=target/release/samsa]
NEMESIS_FAULTS ?= 200
NEMESIS_SEED ?=
NEMESIS_BIN ?= $(SAMSA_DEBUG)
NEMESIS_ARGS ?= --pause 3:15
NEMESIS_SEED_ARG = $(if $(NEMESIS_SEED),--seed $(NEMESIS_SEED))

.PHONY: quota-long
## The long form of the quota rate tests (README, "Client quotas"): each client's rate
## measured over a minute, held within 10 % of its quota. The short form (20 s, within
## 15 % of it) runs in `make compat`.
quota-long: $(SAMSA_DEBUG)
	QUOTA_MEASURE_S=60 SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash compat/run.sh -s -k test_quota_rates

.PHONY: share-offsets-long
## The long form of the share-group offsets tool test (README, "Share groups"): every
## `kafka-share-groups --reset-offsets` specification and the refusals; the short form runs
## in `make compat`.
share-offsets-long: $(SAMSA_DEBUG)
	SHARE_OFFSETS_LONG=1 SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash compat/run.sh -k test_share_groups_reset_and_delete_offsets

.PHONY: links-long
## The long form of the cluster link tests (README, "Cluster links"): a source restart and a
## destination killed mid-way under a producer, a mirror partition's leader stopped on a
## three-node destination, and a network partition between source and destination (network
## namespaces: needs root); the short forms run in `make compat`.
links-long: $(SAMSA_DEBUG)
	LINKS_LONG=1 SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash compat/run.sh -k "test_source_restart_and_destination_kill or test_leadership_moves_on_a_destination_cluster or test_network_partition_between_source_and_destination"

.PHONY: nemesis nemesis-short
nemesis: $(SAMSA_DEBUG)
	SAMSA_BIN=$(abspath $(NEMESIS_BIN)) python3 compat/nemesis/run.py --both --faults $(NEMESIS_FAULTS) $(NEMESIS_SEED_ARG) $(NEMESIS_ARGS)

nemesis-short: $(SAMSA_DEBUG)
	python3 -m pytest -q -p no:cacheprovider compat/nemesis/test_checker.py
	SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) python3 compat/nemesis/run.py --both --faults 7 $(NEMESIS_SEED_ARG)

## The benchmark tool, run with tiny counts against the debug broker and samsa alone: it
## must build, run and print; nothing is asserted about speed (speed lives in `make bench`).
## Then the scale mode's smoke (README, "Scale (simulated)"): three voters, 10 simulated
## brokers, 1 000 partitions, short sessions; it fails if any of its steps does not complete.
bench-smoke: bench-build-deps $(SAMSA_DEBUG)
	$(CARGO) build -p samsa-bench --bin samsa-bench
	target/debug/samsa-bench --smoke --samsa-bin $(CURDIR)/$(SAMSA_DEBUG)
	target/debug/samsa-bench scale --smoke --samsa-bin $(CURDIR)/$(SAMSA_DEBUG)

clean:
	$(CARGO) clean
	rm -rf data

## Throughput, latency and resource use of samsa next to Apache Kafka and the machine's
## physical limits: a table on stdout, target/bench/results.json and target/bench/bench.svg.
## BENCH_ARGS="--quick" for short runs, "--skip-kafka" for samsa alone.
.PHONY: bench bench-deps bench-build-deps
bench: bench-deps
	$(CARGO) build --release -p samsa -p samsa-bench --bin samsa --bin samsa-bench
	target/release/samsa-bench $(BENCH_ARGS)

## The metadata path at cluster scale, by simulation (README, "Scale (simulated)"): the real
## three-voter quorum (release build) and up to 100 simulated brokers, at 1 000, 10 000 and
## 100 000 partitions. SCALE_SIZES=1,10 for the smaller sizes only.
SCALE_SIZES ?= 1,10,100
.PHONY: bench-scale
bench-scale: bench-build-deps
	$(CARGO) build --release -p samsa -p samsa-bench --bin samsa --bin samsa-bench
	target/release/samsa-bench scale --sizes $(SCALE_SIZES)

## Java and Maven run the Kafka reference.
bench-deps: bench-build-deps
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi; \
	command -v java >/dev/null && command -v mvn >/dev/null || { echo "bench-deps: ERROR: java or mvn still missing" >&2; exit 1; }

## cmake and a C/C++ compiler build the vendored librdkafka (whose 2.12 sources include
## <curl/curl.h> even when built without curl: only the header is needed), with the system's
## OpenSSL (libssl-dev, found through pkg-config) for the TLS produce figure. Debian's
## librdkafka (2.0.2) cannot be linked instead: the rdkafka crate wants >= 2.12.1.
bench-build-deps:
	@have() { \
	  command -v cmake >/dev/null || echo cmake; \
	  command -v cc >/dev/null || echo gcc; \
	  command -v c++ >/dev/null || echo g++; \
	  echo '#include <curl/curl.h>' | cc -E - >/dev/null 2>&1 || echo libcurl4-openssl-dev; \
	  echo '#include <openssl/ssl.h>' | cc -E - >/dev/null 2>&1 || echo libssl-dev; \
	  command -v pkg-config >/dev/null || echo pkg-config; \
	}; \
	missing="$$(have)"; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi; \
	missing="$$(have)"; \
	if [ -n "$$missing" ]; then echo "bench-build-deps: ERROR: still missing:" $$missing >&2; exit 1; fi
