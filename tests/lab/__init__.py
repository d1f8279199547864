"""The end-to-end lab: etcd -> one confpy watcher per node -> real BIRD in network namespaces.

``tests.lab.cluster.Lab`` builds and removes it (used by ``tests/test_e2e_bgp.py`` and
``python -m tests.lab.demo``); ``tests.lab.cleanup`` records what it made and tears it
down, also from a watchdog if the owning process dies.
"""
