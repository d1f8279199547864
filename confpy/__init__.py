"""confpy: keep configuration files in step with a key-value store (confd, in Python)."""

__version__ = "0.1.0"
