#!/usr/bin/env bash
# Set-up and run, from a fresh clone: venv, install, the local Kafka broker (jars fetched once from
# Maven Central), then Perdure (one worker + the ingress on :8080) with the payments example, in the
# foreground. Ctrl-C stops Perdure; the broker keeps running (deploy/kafka/broker.sh stop).
# Usage: deploy/up.sh [MODULE:APP]      (default perdure.examples.payments:app)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
VENV=${PERDURE_VENV:-.venv}
if [[ ! -x $VENV/bin/python ]]; then "$PY" -m venv "$VENV"; fi
echo "Installing Perdure and its dependencies into $VENV (the first time takes about 30 s)..."
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
echo "Starting the local Kafka broker (the first time fetches its jars with Maven)..."
export PATH=$PWD/$VENV/bin:$PATH

export KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$PWD/.perdure/kafka}
BOOTSTRAP=$(bash deploy/kafka/broker.sh start | tail -n 1)
echo "Kafka broker at $BOOTSTRAP (stop it with: KAFKA_DATA_DIR=$KAFKA_DATA_DIR deploy/kafka/broker.sh stop)"
cat <<MSG
Try it:
  curl -s localhost:${PERDURE_PORT:-8080}/payments/process_payment \\
       -H 'content-type: application/json' -d '{"orderId": "o-1", "userId": "u-7", "amount": 42}'
MSG
exec perdure dev "${1:-perdure.examples.payments:app}" --bootstrap "$BOOTSTRAP" --port "${PERDURE_PORT:-8080}"
