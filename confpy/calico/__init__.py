"""Calico's BGP data model (spec: calico-bgp-data-model.md) for the BIRD templates.

``build_context(view, node_name, family)`` is what the ``calico(family)`` template
function returns: typed, validated objects and every decision of Calico's templates
(mesh, passive side, AS numbers, route reflection, router id, kernel and export
rules), so the templates only iterate and print.
"""

from confpy.calico.context import BirdContext, Session, SettingError, build_context

__all__ = ["BirdContext", "Session", "SettingError", "build_context"]
