"""systemd's notify protocol (sd_notify), spoken directly: one datagram per message to
``$NOTIFY_SOCKET``. Without that variable every call does nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("confpy.notify")


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: How often to send WATCHDOG=1 (half systemd's timeout), or None.
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("systemd notify to %r failed: %s", self.address, exc)


async def keep_informed(notifier: Notifier, healthy: Callable[[], bool], summary: Callable[[], str]) -> None:
    """Until cancelled: ``WATCHDOG=1`` while ``healthy()``, and ``STATUS=`` whenever
    ``summary()`` changes (at most every 5 s, and at least as often as the watchdog needs)."""
    if not notifier.enabled:
        return
    interval = notifier.watchdog_interval
    last = ""
    while True:
        await asyncio.sleep(min(interval or 5.0, 5.0))
        if interval and healthy():
            notifier.send("WATCHDOG=1")
        text = summary()
        if text != last:
            notifier.send(f"STATUS={text}")
            last = text
