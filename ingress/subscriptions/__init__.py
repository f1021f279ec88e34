"""Kafka topics that trigger handlers: the subscriber, its offsets, dead letters and metrics."""
