"""What every Perdure process sets up around the engine: its Kafka clients' settings, its
logs (and librdkafka's, rate-limited), and its fault points. Never imported by the engine or
the SDK."""
