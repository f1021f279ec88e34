"""A deterministic simulation of the whole engine, to find faults before reviewers do.

``python -m partitions.simulation --seed S`` runs one seeded world: several workers running the
real partition runtime, invoker and SDK over a simulated log, on a virtual clock, under a
generated workload and generated faults (crashes, pauses, zombies, log faults, slow and failing
handlers); then it checks DESIGN.md's invariants from outside the engine. A seed replays
identically. See the README's "Deterministic simulation".

- :mod:`~partitions.simulation.loop`: the event loop on virtual time;
- :mod:`~partitions.simulation.log`: the simulated log and its faults;
- :mod:`~partitions.simulation.cluster`: the group coordinator;
- :mod:`~partitions.simulation.worker`: a worker (the runtime's simulation adapter);
- :mod:`~partitions.simulation.workload`, :mod:`~partitions.simulation.plan`: what runs, and when
  faults strike;
- :mod:`~partitions.simulation.checks`: the outside fold and the invariants;
- :mod:`~partitions.simulation.planted`: faults planted to prove the checks see them.
"""
