"""pytest parameters over the two BIRD template sets (``conf.d/`` and ``bird2/``).

Each parameter carries a skip mark naming the missing daemon when its BIRD cannot run
here, so a set that is not checked says so in the report, never silently.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.birdset import SETS, TemplateSet


def checked_sets(sets: tuple[TemplateSet, ...] = SETS) -> list[Any]:
    """``pytest.param`` per set, skipped (with the reason) where its daemons are missing."""
    params = []
    for tset in sets:
        why = tset.missing()
        params.append(
            pytest.param(tset, id=str(tset), marks=pytest.mark.skipif(why is not None, reason=str(why)))
        )
    return params
