"""The HTTP ingress: turns HTTP calls into log records and waits for their responses."""
