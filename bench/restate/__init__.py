"""The Restate baseline of the benchmark: Restate's server and the same workloads on its SDK."""
