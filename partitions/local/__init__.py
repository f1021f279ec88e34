"""One partition run in the process that uses it, with no broker: the log in memory (or in a
file), the store in memory, a clock that is virtual (tests) or the wall's (``perdure dev
--embedded``). partitions/testing and partitions/embedded.py build on it."""
