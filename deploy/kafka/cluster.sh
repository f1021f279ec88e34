#!/usr/bin/env bash
# A replicated Apache Kafka 4.x cluster on one machine: three KRaft nodes (each broker and
# controller, three voters) as plain processes on 127.0.0.1, for development, tests and chaos.
# Each node is a deploy/kafka/broker.sh broker with its own data folder; the jars are the same cache.
#
#   deploy/kafka/cluster.sh start       start the nodes that are not running (all three at once: a
#                                       node answers only once a quorum of controllers is up), wait
#                                       until each answers; the last line is the bootstrap list
#                                       127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   deploy/kafka/cluster.sh stop        stop every node (SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT)
#   deploy/kafka/cluster.sh status      one line per node; exit 0 if all three run, 3 if not
#   deploy/kafka/cluster.sh kill N      kill -9 node N (1-3): a broker crash
#   deploy/kafka/cluster.sh restart N   start node N again on its data (after kill or stop)
#
# Environment:
#   KAFKA_PORT        client port of node 1; node N listens on KAFKA_PORT+N-1 and its controller
#                     on KAFKA_PORT+N+2 (default: what the data folder remembers, else 9092). Pick
#                     ports below the kernel's ephemeral range (ip_local_port_range): a node that
#                     is down could find its port taken by some client's outgoing connection.
#   KAFKA_DATA_DIR    the cluster's folder: node-N/ per node, plus its cluster id and controller ports
#                     (default ${XDG_STATE_HOME:-~/.local/state}/perdure/kafka-cluster-$KAFKA_PORT)
#   KAFKA_REPLICATION replicas of internal topics and the default for new topics (default 3)
#   KAFKA_MIN_ISR     min.insync.replicas (default 2: an acknowledged record is on two nodes)
#   and everything broker.sh reads (KAFKA_CACHE_DIR, KAFKA_HEAP_OPTS, ...), for every node.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BROKER=$HERE/broker.sh
HOST=127.0.0.1
NODES=3
PYTHON=${PYTHON:-python3}

die() { echo "cluster.sh: error: $*" >&2; exit 1; }

if [[ -z ${KAFKA_PORT:-} && -n ${KAFKA_DATA_DIR:-} && -f $KAFKA_DATA_DIR/port ]]; then
  KAFKA_PORT=$(cat "$KAFKA_DATA_DIR/port")
fi
KAFKA_PORT=${KAFKA_PORT:-9092}
[[ $KAFKA_PORT =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a port number, got '$KAFKA_PORT'"
ROOT=${KAFKA_DATA_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/perdure/kafka-cluster-$KAFKA_PORT}
ROOT=$(realpath -m -- "$ROOT")
export KAFKA_REPLICATION=${KAFKA_REPLICATION:-3}
export KAFKA_MIN_ISR=${KAFKA_MIN_ISR:-2}

port_of() { echo $((KAFKA_PORT + $1 - 1)); }
bootstrap() {
  local n out=""
  for ((n = 1; n <= NODES; n++)); do out+="${out:+,}$HOST:$(port_of "$n")"; done
  echo "$out"
}

# The controller ports and the cluster id are chosen once and kept: a node restarted on its data
# must find its quorum where it was.
setup() {
  mkdir -p "$ROOT"
  echo "$KAFKA_PORT" >"$ROOT/port"
  if [[ ! -f $ROOT/controller.ports ]]; then
    # Fixed, next to the client ports: a port the kernel hands out as a free one lies in its
    # ephemeral range, where a client's outgoing connection can take it while its node is down.
    echo "$((KAFKA_PORT + 3)) $((KAFKA_PORT + 4)) $((KAFKA_PORT + 5))" >"$ROOT/controller.ports"
  fi
  read -r -a CPORTS <"$ROOT/controller.ports"
  ((${#CPORTS[@]} == NODES)) || die "$ROOT/controller.ports should hold $NODES ports"
  if [[ ! -f $ROOT/cluster.id ]]; then
    # Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding, and (like
    # Kafka's own Uuid.randomUuid) never start with "-", which its tools would read as an option.
    "$PYTHON" -c 'import base64, os
while (cid := base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")).startswith("-"):
    pass
print(cid)' >"$ROOT/cluster.id"
  fi
  VOTERS=""
  local n
  for ((n = 1; n <= NODES; n++)); do VOTERS+="${VOTERS:+,}$n@$HOST:${CPORTS[n - 1]}"; done
}

node_number() {
  [[ ${1:-} =~ ^[1-3]$ ]] || die "name a node: 1, 2 or 3 (got '${1:-}')"
}

# Runs broker.sh for node $1 with its own folder, ports and the shared quorum.
node() {
  local n=$1; shift
  KAFKA_DATA_DIR=$ROOT/node-$n KAFKA_PORT=$(port_of "$n") KAFKA_NODE_ID=$n \
    KAFKA_CONTROLLER_PORT=${CPORTS[n - 1]} KAFKA_QUORUM_VOTERS=$VOTERS \
    KAFKA_CLUSTER_ID=$(cat "$ROOT/cluster.id") bash "$BROKER" "$@"
}

cmd_start() {
  setup
  bash "$BROKER" fetch  # once, before three starts race to fetch the same jars
  local n pids=() failed=0
  for ((n = 1; n <= NODES; n++)); do
    node "$n" start >"$ROOT/node-$n.start.out" 2>&1 &
    pids+=($!)
  done
  for ((n = 1; n <= NODES; n++)); do
    if ! wait "${pids[n - 1]}"; then
      failed=1
      echo "cluster.sh: node $n did not start:" >&2
      cat "$ROOT/node-$n.start.out" >&2
    fi
  done
  ((failed == 0)) || die "the cluster did not start (data in $ROOT)"
  bootstrap
}

cmd_stop() {
  setup
  local n
  for ((n = 1; n <= NODES; n++)); do node "$n" stop & done
  wait
}

cmd_status() {
  setup
  local n running=0
  for ((n = 1; n <= NODES; n++)); do
    if out=$(node "$n" status); then running=$((running + 1)); fi
    echo "node $n: $out"
  done
  echo "$(bootstrap)"
  ((running == NODES)) || return 3
}

cmd_restart() {
  node_number "${1:-}"
  setup
  node "$1" start >/dev/null
  bootstrap
}

cmd_kill() {
  node_number "${1:-}"
  setup
  node "$1" kill
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  restart) cmd_restart "${2:-}" ;;
  *) echo "usage: $0 {start|stop|status|kill N|restart N}" >&2; exit 2 ;;
esac
