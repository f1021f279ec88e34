#!/usr/bin/env bash
# Every check and test, from a fresh clone: venv, install, lint, types, import rules, the broker, pytest.
# Usage: deploy/check.sh [pytest args...]     (.ci/run runs exactly this)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3}
VENV=${PERDURE_VENV:-.venv}
step() { printf '\n==> %s\n' "$*"; }

step "venv and install ($VENV)"
if [[ ! -x $VENV/bin/python ]]; then "$PY" -m venv "$VENV"; fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
export PATH=$PWD/$VENV/bin:$PATH

step "ruff (lint, format)"
ruff check .
ruff format --check .
step "mypy (strict on engine/ and sdk/)"
mypy -p perdure
step "import rules"
lint-imports --no-cache
step "shell scripts"
bash -n deploy/kafka/broker.sh deploy/kafka/cluster.sh deploy/check.sh deploy/up.sh deploy/restate_protocol.sh

step "Prometheus and Chromium (the dashboards' test scrapes a cluster; the web UI's test drives a browser)"
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  # Debian's packages; as root, or through sudo where there is one.
  SUDO=""; [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null 2>&1 &&
      $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
    echo "could not install ${missing[*]}: tests/deploy/test_prometheus.py or tests/ingress/test_web_ui.py will fail"
fi
command -v prometheus >/dev/null 2>&1 && prometheus --version 2>&1 | head -n 1
command -v chromium >/dev/null 2>&1 && chromium --version 2>/dev/null | head -n 1

step "Kafka broker"
BROKER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/perdure-check-kafka.XXXXXX")
export KAFKA_DATA_DIR=$BROKER_DIR
export KAFKA_PORT=${KAFKA_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
cleanup() {
  bash deploy/kafka/broker.sh stop >/dev/null 2>&1 || true
  rm -rf "$BROKER_DIR"
}
trap cleanup EXIT
# Once in a while a fresh JVM dies before it logs anything: one more try before giving up.
if ! PERDURE_TEST_BOOTSTRAP=$(bash deploy/kafka/broker.sh start | tail -n 1); then
  echo "the broker did not start; trying once more"
  bash deploy/kafka/broker.sh stop >/dev/null 2>&1 || true
  PERDURE_TEST_BOOTSTRAP=$(bash deploy/kafka/broker.sh start | tail -n 1)
fi
export PERDURE_TEST_BOOTSTRAP
echo "broker at $PERDURE_TEST_BOOTSTRAP"

step "pytest"
pytest "$@"
