"""The chaos suite (``python -m tests.chaos``): tests/chaos/suite.py says what it does."""
