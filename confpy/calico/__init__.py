"""Calico's BGP data model (spec: calico-bgp-data-model.md) for the BIRD templates.

:func:`template_globals` is the renderer plugin that gives templates ``calico(family)``:
typed, validated objects and every decision of Calico's templates (mesh, passive side,
AS numbers, route reflection, router id, kernel and export rules), so the templates
only iterate and print. The model (:mod:`confpy.calico.context`) is imported on the
first call, by the BIRD templates only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from confpy.keyview import KeyView


def template_globals(view: KeyView, node_name: str) -> Mapping[str, Callable[[int], object]]:
    """``calico(family)``: the typed context of this render (built once per family)."""
    built: dict[int, object] = {}

    def calico(family: int = 4) -> object:
        if family not in built:
            from confpy.calico.context import build_context

            built[family] = build_context(view, node_name, family)
        return built[family]

    return {"calico": calico}
