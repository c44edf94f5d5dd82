# Xianjie: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean-var

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## demo: the main job on the embedded default (the seed case, end to end); artefacts in var/demo/
demo: $(STAMP)
	$(BIN)/python -m services demo

## test: lint, types, and the whole test suite
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check shared services tests bench

typecheck: $(STAMP)
	$(BIN)/mypy shared services/trajectory/domain

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

## bench: assess on a generated day of ~1M pings beside orjson and stdlib json merely parsing the same files
bench: $(STAMP)
	$(BIN)/python -m bench.assess

## lock: re-pin dependencies after editing pyproject.toml
lock: $(STAMP)
	$(BIN)/uv pip compile -q pyproject.toml --extra dev -o requirements.lock

clean-var:
	rm -rf var/

## kafka-up / kafka-down: a single-node Apache Kafka (KRaft) on 127.0.0.1:9092 for development and
## the Kafka tests; jars fetched once from Maven Central into deploy/kafka/lib/, logs in var/kafka/logs/
.PHONY: kafka-up kafka-down
kafka-up: ; bash deploy/kafka/kafka.sh up
kafka-down: ; bash deploy/kafka/kafka.sh down

## bench-notify: notifications per second through email and webhook on loopback (real SMTP and HTTP peers)
.PHONY: bench-notify
bench-notify: $(STAMP)
	$(BIN)/python -m bench.notify

## bench-api: the public status endpoint and case reads under load, beside a bare FastAPI endpoint
bench-api: $(STAMP)
	$(BIN)/python -m bench.api

## bench-kafka: pings/s through one trajectory worker beside a bare aiokafka consumer on the same
## records, and delivered -> GapFlagged latency (needs make kafka-up and deploy/postgres/pg.sh up)
.PHONY: bench-kafka
bench-kafka: $(STAMP)
	$(BIN)/python -m bench.kafka

## faults: the whole fault suite (broker, service and database restarts, poison messages, fuzzing,
## hostile users, privacy); writes docs/reliability.md. `make test` runs its fast part.
.PHONY: faults
faults: $(STAMP)
	$(BIN)/python -m pytest -q tests/faults --faults-full --reliability-report docs/reliability.md
