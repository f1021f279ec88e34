"""The worker as a member of a Kafka consumer group: the partition runtime's adapter, its
transactional publisher and its topics."""
