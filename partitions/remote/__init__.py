"""Running the services of registered deployments (Restate's SDKs) over its service protocol."""
