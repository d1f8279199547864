"""The project's BIRD confdir for a test daemon: the same resources, harmless reloads.

``conf.d`` reloads BIRD by signalling every process named ``bird``/``bird6``; a test
daemon must not touch the machine's BIRDs, so each reload becomes ``echo <unit>`` into
``<confdir>/reloads``. Run the daemon with ``-dest-root`` (or ``CONFPY_DEST_ROOT``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path("etc/calico/confd/config")  # where the files land under the dest root
_RELOAD = re.compile(r"^reload_(signal|process|pidfile|birdc|ok|cmd)\s*=.*$\n?", re.M)
_CHECK = re.compile(r"^check_cmd\s*=.*$\n?", re.M)


def bird_confdir(target: Path, *, checks: bool = True) -> Path:
    """Copy conf.d and templates to ``target``; ``checks=False`` drops the BIRD checks too."""
    shutil.copytree(ROOT / "templates", target / "templates")
    (target / "conf.d").mkdir(parents=True)
    for toml in sorted((ROOT / "conf.d").glob("*.toml")):
        text = _RELOAD.sub("", toml.read_text())
        if not checks:
            text = _CHECK.sub("", text)
        unit = re.search(r'^unit\s*=\s*"([^"]+)"', text, re.M)
        name = unit[1] if unit else toml.stem
        text += f'reload_cmd = "echo {name} >> {target}/reloads"\n'
        (target / "conf.d" / toml.name).write_text(text)
    return target


def reloads(confdir: Path) -> list[str]:
    try:
        return (confdir / "reloads").read_text().split()
    except FileNotFoundError:
        return []
