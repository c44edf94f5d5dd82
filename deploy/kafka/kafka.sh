#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker + controller in one JVM) for development and tests.
#
#   bash deploy/kafka/kafka.sh fetch    # Kafka's own jars from Maven Central into deploy/kafka/lib/ (cached)
#   bash deploy/kafka/kafka.sh up       # format storage once, start, wait until the broker answers
#   bash deploy/kafka/kafka.sh down     # stop gracefully
#   bash deploy/kafka/kafka.sh status   # exit 0 when up, 3 when down
#
# Data and logs live under var/kafka/ (data/, logs/, server.properties, kafka.pid, cluster.id).
# `up` and `down` are idempotent. Exit code 69 means java or mvn is missing (tests skip on it,
# except under CI=true).
# Linux (reads /proc). Overridable from the environment: XJ_KAFKA_PORT (9092), XJ_KAFKA_CONTROLLER_PORT (9093),
# XJ_KAFKA_VAR (var/kafka), XJ_KAFKA_HEAP (512m), XJ_KAFKA_START_TIMEOUT seconds (90).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB="$HERE/lib"
STAMP="$LIB/.fetched"
HOST=127.0.0.1
PORT="${XJ_KAFKA_PORT:-9092}"
CPORT="${XJ_KAFKA_CONTROLLER_PORT:-9093}"
VAR="${XJ_KAFKA_VAR:-$ROOT/var/kafka}"
HEAP="${XJ_KAFKA_HEAP:-512m}"
START_TIMEOUT="${XJ_KAFKA_START_TIMEOUT:-90}"
PIDFILE="$VAR/kafka.pid"
PROPS="$VAR/server.properties"
LOGS="$VAR/logs"
EX_UNAVAILABLE=69

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: $*" >&2; exit 1; }

need() {  # need TOOL WHY
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "kafka.sh: '$1' not found on PATH; it is needed $2." >&2
        echo "kafka.sh: install Java 17+ and Maven (Debian: apt-get install openjdk-17-jre-headless maven)." >&2
        exit "$EX_UNAVAILABLE"
    fi
}

lock() {  # one fetch/up/down at a time (parallel test workers may all call `up`)
    mkdir -p "$VAR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$VAR/.lock"
        flock 9
    fi
}

pom_sum() { sha256sum "$HERE/pom.xml" | cut -d' ' -f1; }

fetched() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_sum)" ]] && compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
    if fetched; then
        return 0
    fi
    need mvn "to fetch Kafka's jars from Maven Central"
    need java "to run Maven"
    say "fetching Apache Kafka's jars with Maven into deploy/kafka/lib/ ..."
    local tmp="$LIB.tmp.$$" log
    log="$(mktemp)"
    rm -rf "$tmp"
    if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$tmp" "$log"
        die "mvn dependency:copy-dependencies failed"
    fi
    rm -f "$log"
    rm -rf "$HERE/target"
    rm -rf "$LIB"
    mv "$tmp" "$LIB"
    pom_sum >"$STAMP"
    say "fetched $(find "$LIB" -name '*.jar' | wc -l) jars"
}

running_pid() {  # prints the pid of our broker if it runs
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    # a recycled pid is not our broker: check it runs kafka.Kafka on our properties file
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Does the broker answer? A metadata request that names at least one live broker. With the
# project's venv this is confluent-kafka's admin client; without it, a TCP connect alone.
answers() {
    local py="${XJ_KAFKA_PYTHON:-$ROOT/.venv/bin/python}"
    port_open "$PORT" || return 1  # cheap: the listener opens once the broker is nearly ready
    if [[ -x "$py" ]] && "$py" -c 'import confluent_kafka' 2>/dev/null; then
        "$py" - "$HOST:$PORT" <<'EOF' >"$VAR/probe.err" 2>&1
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "client.id": "kafka.sh-probe", "socket.timeout.ms": 3000})
assert admin.describe_cluster(request_timeout=3).result().nodes
admin.list_topics(timeout=3)
EOF
    else
        port_open "$PORT"
    fi
}

write_props() {
    mkdir -p "$VAR/data" "$LOGS"
    cat >"$PROPS" <<EOF
# Written by deploy/kafka/kafka.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$VAR/data
num.partitions=6
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# a single-node dev broker: a new consumer group starts at once rather than waiting 3 s for peers
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=67108864
EOF
    cat >"$VAR/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $LOGS/server.log
appender.file.filePattern = $LOGS/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.kafka.additivity = false
logger.kafka.appenderRef.file.ref = file
logger.apache.name = org.apache.kafka
logger.apache.level = info
logger.apache.additivity = false
logger.apache.appenderRef.file.ref = file
EOF
}

java_opts() {
    echo "-Xmx$HEAP -Xms$HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true" \
         "-Dlog4j2.configurationFile=$VAR/log4j2.properties -Dkafka.logs.dir=$LOGS"
}

format_once() {
    [[ -f "$VAR/data/meta.properties" ]] && return 0
    local id
    if [[ -s "$VAR/cluster.id" ]]; then
        id="$(cat "$VAR/cluster.id")"
    else
        id="$(java -cp "$LIB/*" -Dlog4j2.configurationFile="$VAR/log4j2.properties" \
                kafka.tools.StorageTool random-uuid | tail -n1)"
        echo "$id" >"$VAR/cluster.id"
    fi
    say "formatting KRaft storage in ${VAR#"$ROOT/"}/data (cluster id $id)"
    # shellcheck disable=SC2046
    java $(java_opts) -cp "$LIB/*" kafka.tools.StorageTool format -t "$id" -c "$PROPS" \
        >>"$LOGS/format.log" 2>&1 || { cat "$LOGS/format.log" >&2; die "formatting storage failed"; }
}

cmd_up() {
    need java "to run the broker"
    lock
    cmd_fetch
    local pid
    if pid="$(running_pid)"; then
        if answers; then
            say "already up (pid $pid, $HOST:$PORT)"
            return 0
        fi
        say "pid $pid runs but does not answer yet; waiting"
    else
        if port_open "$PORT" || port_open "$CPORT"; then
            die "$HOST:$PORT or :$CPORT is taken by a process this script did not start; stop it or set XJ_KAFKA_PORT/XJ_KAFKA_CONTROLLER_PORT"
        fi
        rm -f "$PIDFILE"
        write_props
        format_once
        say "starting the broker on $HOST:$PORT (controller $HOST:$CPORT), logs in ${LOGS#"$ROOT/"}/"
        # setsid: the broker outlives this shell and is not hit by signals sent to its group;
        # 9>&-: it must not inherit (and hold) the lock.
        # shellcheck disable=SC2046
        setsid java $(java_opts) -cp "$LIB/*" kafka.Kafka "$PROPS" \
            >>"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi
    local t0=$SECONDS
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            tail -n 40 "$LOGS/kafka.out" "$LOGS/server.log" >&2 2>/dev/null || true
            die "the broker exited during startup (logs above, full ones in $LOGS)"
        fi
        if (( SECONDS - t0 > START_TIMEOUT )); then
            tail -n 40 "$LOGS/server.log" >&2 2>/dev/null || true
            echo "kafka.sh: the last probe said:" >&2
            tail -n 5 "$VAR/probe.err" >&2 2>/dev/null || true
            die "the broker did not answer within ${START_TIMEOUT}s (pid $pid still runs; 'kafka.sh down' stops it)"
        fi
        sleep 0.5
    done
    say "up (pid $pid, $HOST:$PORT) after $((SECONDS - t0))s"
}

cmd_down() {
    lock
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        say "not running"
        return 0
    fi
    say "stopping the broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do  # a controlled shutdown takes a few seconds
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still running after 30s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    say "down"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if answers; then
            say "up (pid $pid, $HOST:$PORT)"
            return 0
        fi
        say "starting or stuck (pid $pid runs but does not answer on $HOST:$PORT)"
        return 3
    fi
    say "down"
    return 3
}

case "${1:-}" in
    fetch) need java "to run Maven"; lock; cmd_fetch ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 fetch|up|down|status" >&2; exit 2 ;;
esac
