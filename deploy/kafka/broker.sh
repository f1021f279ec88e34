#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, combined broker + controller) for development and CI.
# No Docker and no tarball: the jars come from Maven Central through pom.xml beside this script.
#
#   deploy/kafka/broker.sh start    fetch the jars on first use, format storage on first start,
#                                   start in the background, wait until a metadata request succeeds,
#                                   print the bootstrap address 127.0.0.1:PORT as the last line.
#                                   If this broker already runs, only print the address.
#   deploy/kafka/broker.sh stop     SIGTERM the recorded PID, SIGKILL after KAFKA_STOP_TIMEOUT s.
#   deploy/kafka/broker.sh status   print the address and PID, exit 0 if running, 3 if not.
#   deploy/kafka/broker.sh fetch    only fetch the jars (what `start` does on first use).
#   deploy/kafka/broker.sh kill     kill -9 the recorded PID (a crash, for fault tests).
#
# deploy/kafka/cluster.sh runs three of these as one replicated cluster through the KAFKA_NODE_*
# variables below; alone, a broker is node 1 of a one-node quorum with one replica everywhere.
#
# Environment:
#   KAFKA_PORT            client port on 127.0.0.1 (default: the one the data folder remembers,
#                         else 9092)
#   KAFKA_CONTROLLER_PORT KRaft controller port (default: a free port, remembered in the data folder)
#   KAFKA_DATA_DIR        data, config, logs and PID file
#                         (default ${XDG_STATE_HOME:-~/.local/state}/perdure/kafka-$KAFKA_PORT)
#   KAFKA_CACHE_DIR       where the jars go (default ${XDG_CACHE_HOME:-~/.cache}/perdure/kafka-<version>)
#   KAFKA_START_TIMEOUT   seconds to wait for the broker to answer (default 120)
#   KAFKA_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_HEAP_OPTS       JVM heap (default -Xms256m -Xmx1g: room for tests on a 2-core, 24 GiB box)
#   KAFKA_MVN_ARGS        extra Maven arguments for the fetch (a settings file, a local repository)
#   KAFKA_SASL_PORT       also listen on this port with SASL_PLAINTEXT (SCRAM-SHA-256 and -512)
#   KAFKA_SCRAM_USERS     "name:password ..." SCRAM users, created when the storage is formatted
#                         (Kafka's StorageTool --add-scram: users exist before the broker starts)
#   KAFKA_NODE_ID         node.id (default 1)
#   KAFKA_QUORUM_VOTERS   controller.quorum.voters, "1@127.0.0.1:P,2@..." (default: this node alone;
#                         needs KAFKA_CONTROLLER_PORT, this node's port in the list)
#   KAFKA_CLUSTER_ID      the cluster id storage is formatted with (default: a new random one)
#   KAFKA_REPLICATION     replicas of internal topics and default.replication.factor (default 1)
#   KAFKA_MIN_ISR         min.insync.replicas of the broker and its internal topics (default 1)
#   KAFKA_EXTRA_PROPERTIES  more server.properties lines, appended last (they win)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$HERE/pom.xml
HOST=127.0.0.1

die() { echo "broker.sh: error: $*" >&2; exit 1; }
log() { echo "broker.sh: $*" >&2; }

# One version, one place: the repository's .env, which docker compose reads too.
VERSION_FILE=$HERE/../../.env
KAFKA_VERSION=$(sed -n 's/^KAFKA_VERSION=\(.*\)$/\1/p' "$VERSION_FILE" 2>/dev/null | tail -n 1)
[[ -n $KAFKA_VERSION ]] || die "no KAFKA_VERSION=... in $VERSION_FILE"
# A data folder remembers the port its broker listens on: with only KAFKA_DATA_DIR given,
# status and start name the right address.
if [[ -z ${KAFKA_PORT:-} && -n ${KAFKA_DATA_DIR:-} && -f $KAFKA_DATA_DIR/port ]]; then
  KAFKA_PORT=$(cat "$KAFKA_DATA_DIR/port")
fi
KAFKA_PORT=${KAFKA_PORT:-9092}
[[ $KAFKA_PORT =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a port number, got '$KAFKA_PORT'"
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/perdure/kafka-$KAFKA_PORT}
# Absolute: the broker's command line names its config by this path, and `stop` recognises its
# broker by it; a relative folder given to `stop` never matched a broker started elsewhere.
KAFKA_DATA_DIR=$(realpath -m -- "$KAFKA_DATA_DIR")
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/perdure/kafka-$KAFKA_VERSION}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
# Upstream kafka-run-class.sh defaults, plus exit-on-OOM so a dying broker does not linger.
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}
JAVA=${JAVA:-java}
PYTHON=${PYTHON:-python3}

LIBS=$KAFKA_CACHE_DIR/libs
CONF=$KAFKA_DATA_DIR/conf
DATA=$KAFKA_DATA_DIR/data
LOGS=$KAFKA_DATA_DIR/logs
PIDFILE=$KAFKA_DATA_DIR/broker.pid
BOOTSTRAP=$HOST:$KAFKA_PORT

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The PID file names our broker only if that process is alive and is a Kafka JVM using our config:
# after a reboot or a kill -9 the number may belong to an unrelated process.
pid_is_ours() {
  [[ -f $PIDFILE ]] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kafka.Kafka $CONF/server.properties"
}

who_listens() {  # best effort: the process holding a TCP port
  command -v ss >/dev/null && ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_fetch() {
  if compgen -G "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null && [[ -f $LIBS/.complete ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "Maven (mvn) is not installed; it fetches the broker jars once.
  Install it (Debian: apt-get install maven) or run the stack with docker compose (see README)."
  command -v "$JAVA" >/dev/null || die "Java is not installed; the broker needs Java 17 or newer.
  Install it (Debian: apt-get install openjdk-17-jre-headless) or use docker compose (see README)."
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (once)"
  rm -rf "$LIBS.tmp" && mkdir -p "$LIBS.tmp"
  local extra; read -r -a extra <<<"${KAFKA_MVN_ARGS:-}"
  if ! mvn -q -B ${extra[@]+"${extra[@]}"} -f "$POM" dependency:copy-dependencies -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$LIBS.tmp" >"$KAFKA_CACHE_DIR.mvn.log" 2>&1; then
    tail -n 20 "$KAFKA_CACHE_DIR.mvn.log" >&2
    die "could not fetch the Kafka jars with Maven (no network, or Maven Central unreachable?).
  Full log: $KAFKA_CACHE_DIR.mvn.log"
  fi
  compgen -G "$LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || die "kafka_2.13 jar missing after fetch"
  touch "$LIBS.tmp/.complete"
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
  log "$(find "$LIBS" -name '*.jar' | wc -l) jars in $LIBS"
}

write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  local cport
  if [[ -n ${KAFKA_CONTROLLER_PORT:-} ]]; then
    cport=$KAFKA_CONTROLLER_PORT
  elif [[ -f $KAFKA_DATA_DIR/controller.port ]] && ! port_open "$(cat "$KAFKA_DATA_DIR/controller.port")"; then
    cport=$(cat "$KAFKA_DATA_DIR/controller.port")
  else
    cport=$(free_port)
  fi
  echo "$cport" >"$KAFKA_DATA_DIR/controller.port"
  echo "$KAFKA_PORT" >"$KAFKA_DATA_DIR/port"
  port_open "$cport" && die "controller port $cport is in use (set KAFKA_CONTROLLER_PORT)"
  local node=${KAFKA_NODE_ID:-1} voters=${KAFKA_QUORUM_VOTERS:-}
  [[ $node =~ ^[0-9]+$ ]] || die "KAFKA_NODE_ID must be a number, got '$node'"
  if [[ -n $voters ]]; then
    [[ -n ${KAFKA_CONTROLLER_PORT:-} ]] || die "KAFKA_QUORUM_VOTERS needs KAFKA_CONTROLLER_PORT"
  else
    voters="$node@$HOST:$cport"
  fi
  local rf=${KAFKA_REPLICATION:-1} isr=${KAFKA_MIN_ISR:-1}
  [[ $rf =~ ^[1-9][0-9]*$ && $isr =~ ^[1-9][0-9]*$ ]] || die "KAFKA_REPLICATION and KAFKA_MIN_ISR must be positive numbers"
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$cport"
  local advertised="PLAINTEXT://$HOST:$KAFKA_PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  local sasl=""
  if [[ -n ${KAFKA_SASL_PORT:-} ]]; then
    [[ $KAFKA_SASL_PORT =~ ^[0-9]+$ ]] || die "KAFKA_SASL_PORT must be a port number"
    listeners+=",SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT"
    advertised+=",SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT"
    protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    local module="org.apache.kafka.common.security.scram.ScramLoginModule required;"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$module
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$module"
  fi
  cat >"$CONF/server.properties" <<EOF
# Written by deploy/kafka/broker.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$sasl
log.dirs=$DATA
# One replica everywhere on one node (so that transactions and idempotent producers work there);
# cluster.sh asks for three, two of them in sync, so that a broker can die without data loss.
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# Acknowledged records must survive a broker failure: never elect a replica that lags.
unclean.leader.election.enable=false
# A 2-core machine: few threads, small internal topics.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
log.cleaner.dedupe.buffer.size=33554432
log.cleaner.backoff.ms=1000
# Fast group joins and short sessions so tests see crashes within seconds.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
transaction.abort.timed.out.transaction.cleanup.interval.ms=2000
# Perdure creates its topics through the Admin API; a typo must fail, not create a topic.
auto.create.topics.enable=false
# Workers trim the log with DeleteRecords; segments below the new start leave the disk at the
# next retention check (5 minutes by default).
log.retention.check.interval.ms=30000
${KAFKA_EXTRA_PROPERTIES:-}
EOF
  cat >"$CONF/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Properties>
    <Property name="logDir">${sys:kafka.logs.dir:-.}</Property>
    <Property name="pattern">[%d] %p %m (%c)%n</Property>
  </Properties>
  <Appenders>
    <RollingFile name="SERVER" fileName="${logDir}/server.log" filePattern="${logDir}/server.log.%i">
      <PatternLayout pattern="${pattern}"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="SERVER"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

java_args() {  # fills JAVA_ARGS; the *_OPTS strings are split on spaces on purpose
  local heap jvm
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  read -r -a jvm <<<"$KAFKA_JVM_OPTS"
  JAVA_ARGS=("$JAVA" "${heap[@]}" "${jvm[@]}" "-Dlog4j2.configurationFile=$CONF/log4j2.xml"
    "-Dkafka.logs.dir=$LOGS" -cp "$LIBS/*")
}

metadata_ok() {  # a real Metadata round trip that lists a broker
  "$PYTHON" - "$BOOTSTRAP" <<'EOF' 2>/dev/null
import sys
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)  # no client here: the started line and the open port have to do
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
EOF
}

show_logs() {
  local f
  for f in "$LOGS/broker.out" "$LOGS/server.log"; do
    echo "--- last lines of $f" >&2
    if [[ -s $f ]]; then tail -n 30 "$f" >&2; else echo "(no output yet)" >&2; fi
  done
  return 0
}

cmd_start() {
  if pid_is_ours; then
    echo "$BOOTSTRAP"
    return 0
  fi
  if [[ -f $PIDFILE ]]; then
    log "removing stale PID file $PIDFILE (process $(cat "$PIDFILE" 2>/dev/null) is gone)"
    rm -f "$PIDFILE"
    # A broker killed a moment ago may still hold its port while the kernel tears it down.
    local wait_until=$((SECONDS + 10))
    while port_open "$KAFKA_PORT" && ((SECONDS < wait_until)); do sleep 0.2; done
  fi
  if port_open "$KAFKA_PORT"; then
    local who; who=$(who_listens "$KAFKA_PORT" || true)
    die "port $KAFKA_PORT on $HOST is already in use${who:+ by $who}, and not by the broker of $KAFKA_DATA_DIR.
  Stop that process, or pick another port: KAFKA_PORT=19092 $0 start"
  fi
  command -v "$JAVA" >/dev/null || die "Java is not installed; the broker needs Java 17 or newer.
  Install it (Debian: apt-get install openjdk-17-jre-headless) or use docker compose (see README)."
  cmd_fetch
  write_config
  java_args
  if [[ ! -f $DATA/meta.properties ]]; then
    local cid
    cid=${KAFKA_CLUSTER_ID:-}
    if [[ -z $cid ]]; then
      cid=$("${JAVA_ARGS[@]}" kafka.tools.StorageTool random-uuid 2>"$LOGS/format.out") ||
        { cat "$LOGS/format.out" >&2; die "could not run the Kafka storage tool"; }
    fi
    local scram=() user
    for user in ${KAFKA_SCRAM_USERS:-}; do
      [[ $user == *:* ]] || die "KAFKA_SCRAM_USERS: expected name:password, got '$user'"
      scram+=(--add-scram "SCRAM-SHA-256=[name=${user%%:*},password=${user#*:}]")
      scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
    done
    "${JAVA_ARGS[@]}" kafka.tools.StorageTool format --cluster-id="$cid" -c "$CONF/server.properties" \
      ${scram[@]+"${scram[@]}"} >>"$LOGS/format.out" 2>&1 ||
      { cat "$LOGS/format.out" >&2; die "storage format failed"; }
    log "formatted $DATA (cluster id $cid)"
  fi
  # A previous run's "Kafka Server started" must not satisfy the readiness check.
  [[ -f $LOGS/server.log ]] && mv -f "$LOGS/server.log" "$LOGS/server.log.prev"
  # Its own session: Ctrl-C in the shell that started it (deploy/up.sh) must not stop it.
  setsid nohup "${JAVA_ARGS[@]}" kafka.Kafka "$CONF/server.properties" >"$LOGS/broker.out" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  log "started pid $! (data in $KAFKA_DATA_DIR), waiting for it to answer"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q "Kafka Server started" "$LOGS/server.log" 2>/dev/null && port_open "$KAFKA_PORT" && metadata_ok; do
    if ! pid_is_ours; then
      # setsid forks when it happens to lead its process group: $! was that short-lived
      # parent, and the broker runs on under another PID. Find it by its config.
      local real; real=$(pgrep -f -- "kafka.Kafka $CONF/server.properties" | head -n 1 || true)
      if [[ -n $real ]]; then
        echo "$real" >"$PIDFILE"
        continue
      fi
      show_logs
      rm -f "$PIDFILE"
      die "the broker exited during startup (logs in $LOGS)"
    fi
    if ((SECONDS >= deadline)); then
      show_logs
      cmd_stop >/dev/null
      die "the broker did not answer within ${KAFKA_START_TIMEOUT}s (logs in $LOGS)"
    fi
    sleep 0.25
  done
  echo "$BOOTSTRAP"
}

cmd_stop() {
  if [[ ! -f $PIDFILE ]]; then
    echo "broker.sh: not running ($KAFKA_DATA_DIR)"
    return 0
  fi
  local pid; pid=$(cat "$PIDFILE")
  if pid_is_ours; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "broker.sh: stopped (pid $pid)"
  else
    echo "broker.sh: not running (stale PID file for $pid removed)"
  fi
  rm -f "$PIDFILE"
}

cmd_kill() {
  if pid_is_ours; then
    local pid; pid=$(cat "$PIDFILE")
    kill -KILL "$pid"
    local until=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < until)); do sleep 0.05; done
    echo "broker.sh: killed (pid $pid)"
  else
    echo "broker.sh: not running ($KAFKA_DATA_DIR)"
  fi
}

cmd_status() {
  if pid_is_ours; then
    echo "running pid $(cat "$PIDFILE") $BOOTSTRAP"
  else
    echo "stopped"
    return 3
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  fetch) cmd_fetch ;;
  kill) cmd_kill ;;
  *) echo "usage: $0 {start|stop|status|fetch|kill}" >&2; exit 2 ;;
esac
