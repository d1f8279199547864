"""Coverage-guided fuzzing of confpy's parsers (issue 18, part 3).

Each harness (:mod:`tests.fuzz.harnesses`) takes one input as bytes and feeds it to one
parser the way confpy meets such input: a resource TOML file, a data file, a store value,
a BIRD reply, an etcd answer. The contract every harness checks: the input parses, or
the parser raises the error type its module documents (``ConfigError``, ``DataError``,
``StoreError``, ...), with a message naming the place (the file, the key, the line);
never another exception, never a hang (a time limit per input) or unbounded memory (an
RSS limit).

``python -m tests.fuzz --help`` runs them (atheris when it is installed: libFuzzer's
coverage-guided engine; else a seeded mutator of its own); ``tests/test_fuzz.py`` replays
every corpus (``tests/fuzz/corpus/<harness>/``) plus a bounded number of seeded
mutations in the suite.
"""
