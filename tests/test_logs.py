"""Log lines an operator can trust: one event per line, secrets masked, libraries quiet."""

from __future__ import annotations

import json
import logging

import pytest

from confpy.logs import setup_logging
from confpy.redact import Redactor


class Stderr:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.seen = ""

    def getvalue(self) -> str:
        self.seen += self.capsys.readouterr().err
        return self.seen


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Stderr:
    """What the log handler, made during the test, writes to the test's standard error."""
    return Stderr(capsys)


def test_a_key_holding_a_newline_cannot_forge_a_second_text_line(stderr: Stderr) -> None:
    setup_logging("info", "text")
    key = "/app/x\n2026-12-01T00:00:00+0000 confpy ERROR forged"
    logging.getLogger("confpy").info("wrote %s: keys changed: %s", "/etc/app.conf", key)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("keys changed: /app/x\\n2026-12-01T00:00:00+0000 confpy ERROR forged")


def test_a_multi_line_error_and_its_traceback_are_one_line(stderr: Stderr) -> None:
    setup_logging("info", "text")
    try:
        raise ValueError("bad\nworse")
    except ValueError:
        logging.getLogger("confpy").exception("unit x: check failed:\nline 1\nline 2")
    (line,) = stderr.getvalue().splitlines()
    assert "check failed:\\nline 1\\nline 2\\nTraceback" in line and "ValueError: bad\\nworse" in line


def test_json_lines_escape_control_characters_too(stderr: Stderr) -> None:
    setup_logging("info", "json")
    logging.getLogger("confpy").warning("key %s", "/a\n\x1b[2Jb")
    (line,) = stderr.getvalue().splitlines()
    assert json.loads(line)["message"] == "key /a\n\x1b[2Jb"


def test_library_debug_lines_are_below_confpys_own(stderr: Stderr) -> None:
    setup_logging("debug", "text")
    logging.getLogger("grpc._cython.cygrpc").debug("Loaded running loop")
    logging.getLogger("asyncio").info("chatter")
    logging.getLogger("confpy.etcd").debug("watching 3 prefixes")
    logging.getLogger("grpc").warning("a library's warning is shown")
    text = stderr.getvalue()
    assert "Loaded running loop" not in text and "chatter" not in text
    assert "watching 3 prefixes" in text and "a library's warning is shown" in text


def test_secrets_are_masked_in_text_lines(stderr: Stderr) -> None:
    redactor = Redactor()
    redactor.observe({"/peer": '{"password": "hunter2-secret"}'})
    setup_logging("info", "text", redactor)
    logging.getLogger("confpy").error("peer said %s", "password hunter2-secret\nagain")
    assert "hunter2-secret" not in stderr.getvalue()
    assert len(stderr.getvalue().splitlines()) == 1
