"""Running this worker's own handlers: one task per attempt, its journal driver, its log lines."""
