"""Running harnesses: replaying a corpus, a seeded mutator of its own, bounds per input,
and a minimizer. The coverage-guided engine is atheris (:mod:`tests.fuzz.atheris_main`,
run in a process of its own); this module is what the suite and the fallback use.
"""

from __future__ import annotations

import hashlib
import random
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"  # not kept in git (.gitignore): minimize, fix, then keep in corpus/

#: Bounds per input: CPU seconds and growth of the process's peak RSS.
DEFAULT_TIMEOUT = 2.0
DEFAULT_RSS_MB = 512


class Hang(BaseException):  # not an Exception: no except clause of confpy's swallows it
    """An input ran past its time limit."""


@dataclass
class Failure(Exception):
    """An input that broke a harness's contract."""

    harness: str
    kind: str  # "crash", "hang", "memory"
    data: bytes
    error: str  # the exception's type and message
    trace: str = ""
    saved: Path | None = None

    def __str__(self) -> str:
        where = f" (saved as {self.saved})" if self.saved else ""
        return f"{self.harness}: {self.kind} on {self.data[:200]!r}{where}: {self.error}\n{self.trace}"

    @property
    def signature(self) -> str:
        """What minimization keeps: the kind and the exception's type."""
        return f"{self.kind}:{self.error.split(':', 1)[0]}"


def corpus(name: str) -> list[tuple[Path, bytes]]:
    d = CORPUS / name
    return [(p, p.read_bytes()) for p in sorted(d.iterdir()) if p.is_file()] if d.is_dir() else []


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _on_timer(_signum: int, _frame: FrameType | None) -> None:
    raise Hang


def run_one(name: str, run: Callable[[bytes], None], data: bytes, timeout: float, rss_mb: float) -> None:
    """Run one input; raise :class:`Failure` if it crashed, hung (CPU time) or grew the
    peak RSS by more than ``rss_mb``."""
    before = _peak_rss_mb()
    old = signal.signal(signal.SIGVTALRM, _on_timer)
    signal.setitimer(signal.ITIMER_VIRTUAL, timeout)
    try:
        run(data)
    except Hang:
        raise Failure(name, "hang", data, f"Hang: more than {timeout:g} s of CPU") from None
    except Exception as exc:
        trace = "".join(traceback.format_exception(exc))
        raise Failure(name, "crash", data, f"{type(exc).__name__}: {exc}", trace) from None
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)
    grew = _peak_rss_mb() - before
    if grew > rss_mb:
        raise Failure(name, "memory", data, f"Memory: peak RSS grew by {grew:.0f} MB")


def save(failure: Failure) -> Failure:
    CRASHES.mkdir(exist_ok=True)
    digest = hashlib.sha1(failure.data).hexdigest()[:16]
    failure.saved = CRASHES / f"{failure.harness}-{failure.kind}-{digest}"
    failure.saved.write_bytes(failure.data)
    return failure


# --- the seeded mutator ----------------------------------------------------------------

#: Tokens worth inserting whole (what the parsers branch on).
TOKENS = [
    b"\x00", b"\n", b"\r\n", b"\"", b"'", b"\\", b"{", b"}", b"[", b"]", b"(", b")", b":", b",", b"=",
    b"{{", b"}}", b"{{-", b"-}}", b"/*", b"*/", b"|", b":=", b"$", b".", b"&&", b"||", b"!", b"==", b"!=",
    b"true", b"false", b"null", b"nan", b"inf", b"1e400", b"-1", b"0", b"4294967296", b"65536",
    b"\xff", b"\xed\xa0\x80", b"\xe2\x80\xae", b"\xd9\xa3", b"&a ", b"*a", b"!!python/object ",
    b"[template]", b"src", b"dest", b"keys", b"mode", b"uid", b"owner", b"check_timeout", b"reload_signal",
    b"if", b"range", b"end", b"else", b"with", b"define", b"template", b"block", b"nil", b"getv", b"printf",
    b"has(", b"all()", b" in ", b" not in ", b"contains", b"starts with", b"0001 ", b"0003 ", b"-", b"+",
    b"10.0.0.1", b"fd00::1", b"fe80::1%eth0", b"10.0.0.0/8", b"/calico/bgp/v1/", b"\"node\":{",
    b"\"dir\":true", b"\"nodes\":[", b"\"kvs\":[", b"\"header\":{\"revision\":\"1\"}", b"\"count\":\"1\"",
]  # fmt: skip


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One to four random edits of ``data`` (libFuzzer's kinds, without coverage)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(9)
        pos = rng.randint(0, len(out))
        if choice == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:  # a random byte
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 2:  # insert random bytes
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and out:  # delete a run
            end = min(len(out), pos + rng.randint(1, 32))
            del out[pos:end]
        elif choice == 4:  # insert a token
            out[pos:pos] = rng.choice(TOKENS)
        elif choice == 5 and out:  # duplicate a run (nesting, repetition)
            start = rng.randrange(len(out))
            run = out[start : start + rng.randint(1, 64)]
            out[pos:pos] = bytes(run) * rng.randint(1, 64)
        elif choice == 6 and pool:  # splice with another input
            other = rng.choice(pool)
            cut = rng.randint(0, len(other))
            out = out[:pos] + other[cut:]
        elif choice == 7 and out:  # truncate
            del out[pos:]
        elif choice == 8 and out:  # replace a digit run with a large number
            out[pos:pos] = str(rng.choice([0, 1, 255, 256, 65535, 65536, 2**32, 2**63, 10**400])).encode()
    return bytes(out[:65536])


@dataclass
class Stats:
    runs: int = 0
    seconds: float = 0.0
    corpus: int = 0
    failures: list[Failure] = field(default_factory=list)


def fuzz(
    name: str,
    run: Callable[[bytes], None],
    *,
    runs: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    rss_mb: float = DEFAULT_RSS_MB,
    max_len: int = 65536,
    keep_going: bool = False,
    mutate_regressions: bool = True,
) -> Stats:
    """Replay the corpus of ``name``, then mutate it (seeded) for ``runs`` inputs or
    ``seconds``. Stops at the first failure unless ``keep_going``. Without
    ``mutate_regressions`` the ``regress-*`` inputs are replayed, not mutated (some take
    a second each: the suite keeps to the quick ones)."""
    start = time.monotonic()
    stats = Stats()
    files = corpus(name)
    seeds = [data for _, data in files] or [b""]
    pool = [d for p, d in files if mutate_regressions or not p.name.startswith("regress-")] or seeds
    stats.corpus = len(seeds)

    def inputs() -> Iterator[bytes]:
        yield from seeds
        rng = random.Random(f"{name}:{seed}")
        while True:
            yield mutate(rng, rng.choice(pool), pool)[:max_len]

    for i, data in enumerate(inputs()):
        if i >= len(seeds) and (
            (runs is not None and stats.runs >= len(seeds) + runs)
            or (seconds is not None and time.monotonic() - start >= seconds)
            or (runs is None and seconds is None)
        ):
            break
        stats.runs += 1
        try:
            run_one(name, run, data, timeout, rss_mb)
        except Failure as failure:
            stats.failures.append(failure)
            if not keep_going:
                break
    stats.seconds = time.monotonic() - start
    return stats


def minimize(
    name: str,
    run: Callable[[bytes], None],
    data: bytes,
    timeout: float = DEFAULT_TIMEOUT,
    budget: float = 60.0,
) -> tuple[bytes, Failure]:
    """The shortest input found (delta debugging: drop chunks, then simplify bytes) that
    fails the same way as ``data``."""
    try:
        run_one(name, run, data, timeout, DEFAULT_RSS_MB * 4)
    except Failure as failure:
        first = failure
    else:
        raise ValueError("the input does not fail: nothing to minimize")
    best, best_failure = data, first
    deadline = time.monotonic() + budget

    def fails(candidate: bytes) -> Failure | None:
        try:
            run_one(name, run, candidate, timeout, DEFAULT_RSS_MB * 4)
        except Failure as failure:
            return failure if failure.signature == first.signature else None
        return None

    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, shrunk = 0, False
        while i < len(best) and time.monotonic() < deadline:
            candidate = best[:i] + best[i + chunk :]
            got = fails(candidate)
            if got is not None:
                best, best_failure, shrunk = candidate, got, True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    for i in range(len(best)):  # simpler bytes: letters and digits read best
        for simple in b"a0 ":
            if time.monotonic() >= deadline or best[i] == simple:
                break
            candidate = best[:i] + bytes([simple]) + best[i + 1 :]
            got = fails(candidate)
            if got is not None:
                best, best_failure = candidate, got
                break
    return best, best_failure
