"""BIRD's control-socket protocol, as ``birdc`` speaks it: connect, greeting, command, reply.

A reply is lines ``NNNN-text`` and `` text`` (continuations) ending with a line
``NNNN text``; ``+text`` lines are asynchronous messages. This module speaks and
parses; :mod:`confpy.commands` judges what a reply means for a reload.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

#: BIRD's reply codes for an accepted ``configure``.
CONFIGURE_OK = {
    "0003": "reconfigured",
    "0004": "reconfiguration in progress",
    "0005": "reconfiguration queued",
}
_GREETING = "0001"
_FINAL = re.compile(r"^([0-9]{4}) ")  # ASCII digits: \d matches other scripts' digits too
REPLY_LIMIT = 1024 * 1024


class BirdError(Exception):
    """The conversation with BIRD broke off; the message says where."""


class BirdNotRunning(BirdError):
    """No BIRD listens on the socket: it does not exist, or refuses connections."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: str  # the final line's four digits
    message: str  # the final line's text
    text: str  # every line BIRD sent for this command


def read_reply(sock: socket.socket, buf: bytearray, deadline: float) -> Reply | None:
    """Read one reply into ``buf`` (kept, so a caller can show what arrived); None if BIRD
    closes first. Raises TimeoutError at ``deadline`` and BirdError past :data:`REPLY_LIMIT`."""
    scanned = 0
    while True:
        end = buf.find(b"\n", scanned)
        if end >= 0:
            line = buf[scanned:end].decode(errors="replace")
            scanned = end + 1
            m = _FINAL.match(line)
            if m:
                return Reply(m.group(1), line[5:].strip(), buf[:scanned].decode(errors="replace"))
            continue
        if len(buf) > REPLY_LIMIT:
            raise BirdError(f"BIRD's reply exceeds {REPLY_LIMIT} bytes")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            return None
        buf += data


def command(socket_path: str, line: str, timeout: float, received: bytearray) -> Reply:
    """Send one command line to the BIRD behind ``socket_path``; its reply.

    What BIRD sent after its greeting is kept in ``received``. Raises
    :class:`BirdNotRunning`, :class:`BirdError`, TimeoutError (nothing complete in
    ``timeout`` seconds) or OSError.
    """
    where = f"BIRD control socket {socket_path}"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(timeout, 0.001))
        try:
            sock.connect(socket_path)
        except FileNotFoundError:
            raise BirdNotRunning(f"{where} does not exist") from None
        except ConnectionRefusedError:
            raise BirdNotRunning(f"{where} refuses connections") from None
        except OSError as exc:
            raise BirdError(f"cannot connect to {where}: {exc}") from None
        greeting = read_reply(sock, received, deadline)
        if greeting is None:
            raise BirdError(f"BIRD closed {socket_path} before its greeting")
        if greeting.code != _GREETING:
            raise BirdError(f"unexpected greeting from BIRD: {greeting.code} {greeting.message}")
        received.clear()
        sock.sendall(line.encode() + b"\n")
        reply = read_reply(sock, received, deadline)
    if reply is None:
        raise BirdError(f"BIRD closed {socket_path} without answering {line!r}")
    return reply
