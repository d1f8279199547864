"""Calico's BGP data model (spec: calico-bgp-data-model.md) for the BIRD templates.

:func:`template_globals` is the renderer plugin that gives templates ``calico(family)``
(the BIRD 1.6 set: one daemon per family) and ``calico_bird2()`` (the BIRD 2 set: one
daemon, both families): typed, validated objects and every decision of Calico's
templates (mesh, passive side, AS numbers, route reflection, router id, kernel and
export rules), so the templates only iterate and print. The model
(:mod:`confpy.calico.context`, :mod:`confpy.calico.bird2`) is imported on the first
call, by the BIRD templates only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from confpy.keyview import KeyView


def template_globals(view: KeyView, node_name: str) -> Mapping[str, Callable[..., object]]:
    """``calico(family)`` and ``calico_bird2()``: the typed contexts of this render (each
    built once per render)."""
    built: dict[int | str, object] = {}

    def calico(family: int = 4) -> object:
        if family not in built:
            from confpy.calico.context import build_context

            built[family] = build_context(view, node_name, family)
        return built[family]

    def calico_bird2() -> object:
        if "bird2" not in built:
            from confpy.calico.bird2 import build_bird2_context

            built["bird2"] = build_bird2_context(view, node_name)
        return built["bird2"]

    return {"calico": calico, "calico_bird2": calico_bird2}
