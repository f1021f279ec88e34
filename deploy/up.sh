#!/usr/bin/env bash
# Set-up and run, from a fresh clone: venv, install, the local Kafka broker (jars fetched once from
# Maven Central), then Perdure with the example app in the foreground (Ctrl-C stops it).
# Usage: deploy/up.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
VENV=${PERDURE_VENV:-.venv}
if [[ ! -x $VENV/bin/python ]]; then "$PY" -m venv "$VENV"; fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
export PATH=$PWD/$VENV/bin:$PATH

export KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-$PWD/.perdure/kafka}
BOOTSTRAP=$(bash deploy/kafka/broker.sh start | tail -n 1)
echo "Kafka broker at $BOOTSTRAP (stop it with: KAFKA_DATA_DIR=$KAFKA_DATA_DIR deploy/kafka/broker.sh stop)"
