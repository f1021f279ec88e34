"""Perdure engine: ids, model, commands, the pure state machine, key layout and Avro codec.

Pure by rule: no Kafka, RocksDB, HTTP or metrics import (enforced by import-linter).
"""
