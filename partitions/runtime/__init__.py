"""The partition runtime: the one place a partition's records are applied and its leader acts.

Every way Perdure runs a partition drives this code: the Kafka worker
(``partitions/kafka/worker.py``, its threads and consumer only an adapter around it), ``perdure dev
--embedded`` and the TestRuntime (``partitions/local/``) and the deterministic simulator
(``partitions/simulation/``). What differs between them is behind the ports of
:mod:`partitions.runtime.ports`: the log records come from, the clock, the way calls reach the
invoker's event loop, and where responses go.
"""
