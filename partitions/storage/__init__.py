"""A partition's store and its life cycle: backups, restores, standby copies, recovery."""
