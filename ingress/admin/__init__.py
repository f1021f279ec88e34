"""The admin process: the admin API, the CLI's client of it, the web UI, deployments, and the
outbox forwarder."""
