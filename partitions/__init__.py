"""Partition workers: Kafka clients, RocksDB stores, the processor loop, timers and the invoker."""
