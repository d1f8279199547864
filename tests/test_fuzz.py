"""The fuzz harnesses (tests/fuzz, issue 18) in the suite: each harness replays its corpus
(real inputs, captured answers and every failure found so far, minimized) and then a
bounded number of seeded mutations of it: the same inputs on every run, in seconds.
Longer, coverage-guided runs: ``python -m tests.fuzz`` (README, "Fuzzing")."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import engine
from tests.fuzz.harnesses import HARNESSES

ROOT = Path(__file__).resolve().parents[1]
SEED = 18
#: New inputs per harness after its corpus (the slower harnesses get fewer).
RUNS = {
    "calico_context": 60,
    "calico_view": 100,
    "convert_confdir": 150,
    "datafile_yaml": 150,
    "go_template": 200,
}


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_each_harness_holds_over_its_corpus_and_seeded_mutations(name: str) -> None:
    h = HARNESSES[name]
    assert len(engine.corpus(name)) >= 3, f"{name}: seed the corpus (python -m tests.fuzz.seed)"
    stats = engine.fuzz(
        name,
        h.run,
        runs=RUNS.get(name, 300),
        seed=SEED,
        timeout=5.0,
        max_len=h.max_len,
        mutate_regressions=False,
    )
    assert not stats.failures, (
        f"{stats.failures[0]}\nreplay: python -m tests.fuzz {name} --engine builtin --seed {SEED}"
    )


def test_the_engine_reports_crashes_hangs_and_minimizes() -> None:
    def parser(data: bytes) -> None:
        if b"loop" in data:
            while True:
                pass
        if b"!" in data:
            raise KeyError("boom")

    with pytest.raises(engine.Failure) as hang:
        engine.run_one("t", parser, b"a loop", 0.2, 512)
    assert hang.value.kind == "hang"
    with pytest.raises(engine.Failure) as crash:
        engine.run_one("t", parser, b"x!y", 1, 512)
    assert (crash.value.kind, crash.value.error) == ("crash", "KeyError: 'boom'")
    small, failure = engine.minimize("t", parser, b"abc!def" * 10)
    assert (small, failure.error) == (b"!", "KeyError: 'boom'")


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_the_runner_fuzzes_with_atheris() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", "selector", "--engine", "atheris", "--runs", "500"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Done 500 runs" in out.stderr and "== selector: exit 0" in out.stdout
