"""The end-to-end lab: etcd -> one confpy watcher per node -> real BIRD in network namespaces.

``tests.support.bgp_lab.cluster.Lab`` builds and removes it (used by ``tests/test_e2e_bgp.py`` and
``python -m tests.support.bgp_lab.demo``); ``tests.support.bgp_lab.cleanup`` records what it made and tears it
down, also from a watchdog if the owning process dies.
"""
