"""The test runtime's own tests use its pytest fixture, as users do."""

pytest_plugins = ["partitions.testing.pytest_plugin"]
