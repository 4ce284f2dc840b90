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
unit:
	$(CARGO) test --workspace --exclude samsa-protocol-tests

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
