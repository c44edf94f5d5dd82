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

# Python writes no .pyc files where PYTHONDONTWRITEBYTECODE is set (as in this project's sessions), and
# uv installs none: then every process compiles every module it imports from source, ~1 s of CPU for
# numpy, polars and pydantic alone. Compile them once (a new venv, or one made before this rule).
BYTECODE := $(VENV)/.bytecode
$(BYTECODE): $(STAMP)
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $(BYTECODE)

install: $(STAMP) $(BYTECODE)

## demo: the main job on the embedded default (the seed case, end to end); artefacts in var/demo/
demo: $(STAMP) $(BYTECODE)
	$(BIN)/python -m services demo

## test: lint, types, and the whole test suite
test: $(STAMP) $(BYTECODE) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check shared services tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy shared services/trajectory/domain

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m unit

## bench: assess on a generated day of ~1M pings beside orjson and stdlib json merely parsing the same files
bench: $(STAMP) $(BYTECODE)
	$(BIN)/python -m compileall -q shared services >/dev/null  # the project's own modules, as a first run would leave them
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
bench-notify: $(STAMP) $(BYTECODE)
	$(BIN)/python -m bench.notify

## bench-api: the public status endpoint and case reads under load, beside a bare FastAPI endpoint
bench-api: $(STAMP) $(BYTECODE)
	$(BIN)/python -m bench.api

## bench-kafka: pings/s through one trajectory worker beside a bare aiokafka consumer on the same
## records, and delivered -> GapFlagged latency (needs make kafka-up and deploy/postgres/pg.sh up)
.PHONY: bench-kafka
bench-kafka: $(STAMP) $(BYTECODE)
	$(BIN)/python -m bench.kafka

## faults: the whole fault suite (broker, service and database restarts, poison messages, fuzzing,
## hostile users, privacy); writes docs/reliability.md. `make test` runs its fast part.
.PHONY: faults
faults: $(STAMP) $(BYTECODE)
	$(BIN)/python -m pytest -q tests/faults --faults-full --reliability-report docs/reliability.md

## evidence-loop: the mediator's path (upload in pieces, open, ask at once) against `assess` on every
## public scenario, N times (default 20); prints how many runs differed (the target is 0)
.PHONY: evidence-loop
evidence-loop: $(STAMP)
	@mkdir -p var; n=$${N:-20}; bad=0; err=0; for i in $$(seq $$n); do \
	  $(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_evidence_path.py >var/evidence-loop-$$i.log 2>&1; \
	  rc=$$?; if [ $$rc = 1 ]; then bad=$$((bad+1)); elif [ $$rc != 0 ]; then err=$$((err+1)); fi; \
	  echo "run $$i of $$n: exit $$rc; $$bad differed, $$err did not run, so far"; done; \
	echo "evidence-loop: $$bad of $$n runs differed from assess ($$err did not run; logs in var/evidence-loop-*.log)"

## bench-accuracy: phase and continuous_delivery accuracy and abstentions on simulated days (dirty,
## indoor outages, harder streets) and on the public scenarios (bench/accuracy.py; days in var/bench/accuracy/)
.PHONY: bench-accuracy
bench-accuracy: $(STAMP) $(BYTECODE)
	$(BIN)/python -m bench.accuracy

.PHONY: imports
## imports: docs/imports.md, what every module under services/ and shared/ imports
imports: $(STAMP)
	$(BIN)/python -m tests.support.imports
