"""One harness under atheris (libFuzzer, coverage-guided): ``python -m tests.fuzz.atheris_main
HARNESS [libFuzzer flags and corpus directories]``. Started by ``python -m tests.fuzz``,
which chooses the flags (time and RSS limits, runs or total time, corpus directories).

confpy's modules and the harness's parsers (``Harness.instrument``) are instrumented as
they are imported: the harness runs once on every seed inside ``instrument_imports``, so
the modules a harness imports on first use are loaded (and instrumented) there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import atheris


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    logging.disable(logging.CRITICAL)  # the stores log every retry; the fuzzer reports what matters
    os.environ.setdefault("BIRD_FLAVOR", "calico")  # never probe a bird binary from a harness
    from tests.fuzz.harnesses import HARNESSES

    harness = HARNESSES[name]
    with atheris.instrument_imports(include=["confpy", *harness.instrument]):
        from tests.fuzz import engine

        for _, data in engine.corpus(name)[:50] or [(None, b"")]:
            with contextlib.suppress(Exception):  # a failing seed is reported by the fuzzing run itself
                harness.run(data)
    atheris.Setup([sys.argv[0], *flags], harness.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
