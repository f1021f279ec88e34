"""Worker pools: ``perdure worker`` on every core as one command (supervisor.py), with one
metrics endpoint for its members (metrics.py)."""
