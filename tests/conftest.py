"""Shared fixtures. etcd fixtures live in tests/etcd_fixtures.py."""

pytest_plugins = ["tests.etcd_fixtures"]
