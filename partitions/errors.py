"""The worker runtime's exceptions: one root, :class:`PartitionError`."""


class PartitionError(Exception):
    """Root of every error raised by the worker runtime."""


class StoreError(PartitionError):
    """A partition store cannot be opened or written."""


class TopicSetupError(PartitionError):
    """The cluster's topics cannot be created or do not match the configuration."""


class StoreFormatError(StoreError):
    """A partition store was written in another store format."""


class RestoreError(PartitionError):
    """A partition store cannot be restored from its backup."""


class PublishError(PartitionError):
    """A handler's record was not published (and nothing of it is visible): the attempt retries."""
