# samsa: the two commands a newcomer needs are `make run` and `make test`.

CARGO ?= cargo
SAMSA_DEBUG := target/debug/samsa

.PHONY: run build test test-deps unit protocol-tests compat clean

## Build and start one broker on 127.0.0.1:9092 with etc/samsa.toml, data under ./data.
run:
	$(CARGO) run --release --bin samsa -- --config etc/samsa.toml --data-dir ./data

build:
	$(CARGO) build --release --bin samsa

## Install what the tests need (if missing), build, and run every test suite.
test: test-deps unit protocol-tests compat

test-deps:
	bash compat/install.sh

$(SAMSA_DEBUG): FORCE
	$(CARGO) build --bin samsa

FORCE:

## Unit tests of every crate in the workspace (storage, config, protocol framing, ...).
## The bench crate builds librdkafka from source; it is built by `make bench`, not here.
unit:
	$(CARGO) test --workspace --exclude samsa-protocol-tests --exclude samsa-bench

## Wire-level tests: the broker binary driven by requests encoded with kafka-protocol,
## including the differential suite against one Apache Kafka that run.sh starts and stops.
protocol-tests: $(SAMSA_DEBUG)
	SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash protocol-tests/run.sh

## Real clients (kcat, confluent-kafka, kafka-python, kafkajs) against a real broker process.
compat: $(SAMSA_DEBUG)
	SAMSA_BIN=$(CURDIR)/$(SAMSA_DEBUG) bash compat/run.sh

clean:
	$(CARGO) clean
	rm -rf data

## Throughput, latency and resource use of samsa next to Apache Kafka and the machine's
## physical limits: a table on stdout, target/bench/results.json and target/bench/bench.svg.
## BENCH_ARGS="--quick" for short runs, "--skip-kafka" for samsa alone.
.PHONY: bench bench-deps
bench: bench-deps
	$(CARGO) build --release -p samsa -p samsa-bench --bin samsa --bin samsa-bench
	target/release/samsa-bench $(BENCH_ARGS)

## cmake and a C compiler build the vendored librdkafka (whose 2.12 sources include
## <curl/curl.h> even when built without curl: only the header is needed); Java and Maven
## run the Kafka reference.
bench-deps:
	@missing=""; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	echo '#include <curl/curl.h>' | cc -E - >/dev/null 2>&1 || missing="$$missing libcurl4-openssl-dev"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
