"""Which BIRD 1.6 the files are for: Calico's build (``calico``), which knows the
``krt_tunnel`` route attribute, or a distribution's (``stock``), which does not.

``BIRD_FLAVOR`` decides when set. Otherwise the ``bird`` that the bundled check runs
(the first on ``$PATH``, as ``/bin/sh`` finds it) is asked once per process, by
parsing a three-line configuration that sets ``krt_tunnel``.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

from confpy.errors import DataError

log = logging.getLogger("confpy.calico")

FLAVORS = ("calico", "stock")
_PROBE = 'router id 192.0.2.1;\nfilter confpy_probe { krt_tunnel = "tunl0"; accept; }\nprotocol device {}\n'
_STOCK_SAYS = "You may set only variables"


class SettingError(DataError):
    """A bad environment variable (CALICO_ROUTER_ID, BIRD_FLAVOR): handled like bad data."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"${name}", message)
        self.args = (f"environment variable {name}: {message}",)


def flavor(environ: Mapping[str, str]) -> str:
    """``BIRD_FLAVOR``, else what the ``bird`` on ``$PATH`` turns out to be."""
    setting = environ.get("BIRD_FLAVOR", "")
    if setting:
        if setting not in FLAVORS:
            raise SettingError("BIRD_FLAVOR", f"{setting!r} is not one of {', '.join(FLAVORS)}")
        return setting
    return detect(shutil.which("bird", path=environ.get("PATH", os.defpath)))


@functools.cache
def detect(binary: str | None) -> str:
    """Ask ``binary`` whether it knows ``krt_tunnel`` (once per binary); logged."""
    if binary is None:
        log.info("BIRD flavour: calico (no bird on PATH to ask; BIRD_FLAVOR=stock for a distribution's BIRD)")
        return "calico"
    with tempfile.NamedTemporaryFile("w", prefix="confpy-flavour-", suffix=".conf") as probe:
        probe.write(_PROBE)
        probe.flush()
        try:
            proc = subprocess.run(
                [binary, "-p", "-c", probe.name],
                capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("BIRD flavour: cannot ask %s (%s): assuming calico; set BIRD_FLAVOR", binary, exc)
            return "calico"
    if proc.returncode == 0:
        found, why = "calico", "knows krt_tunnel"
    elif _STOCK_SAYS in proc.stderr + proc.stdout:
        found, why = "stock", "has no krt_tunnel attribute: IPIP pools program no tunnel"
    else:
        output = (proc.stderr + proc.stdout).strip()
        log.warning(
            "BIRD flavour: %s failed on the probe (%s): assuming calico; set BIRD_FLAVOR", binary, output
        )
        return "calico"
    log.info("BIRD flavour: %s (%s %s; BIRD_FLAVOR overrides)", found, binary, why)
    return found
