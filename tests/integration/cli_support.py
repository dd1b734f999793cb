"""The real CLI in a subprocess, with --json, for integration tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def ledgermesh(*arguments: str) -> tuple[int, Any, str]:
    """Run ``ledgermesh ARGUMENTS --json``: (exit status, parsed stdout, stderr)."""
    completed = subprocess.run(
        [sys.executable, "-m", "node.cli", *arguments, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(completed.stdout) if completed.stdout.strip() else None
    return completed.returncode, result, completed.stderr


def ok(*arguments: str) -> Any:
    """The command's JSON result; the test fails with its stderr otherwise."""
    code, result, stderr = ledgermesh(*arguments)
    assert code == 0, stderr
    return result


def error_of(*arguments: str) -> dict[str, str]:
    """The command's JSON error (code, message); it must exit 1."""
    code, _, stderr = ledgermesh(*arguments)
    assert code == 1, stderr
    error: dict[str, str] = json.loads(stderr.strip().splitlines()[-1])["error"]
    return error
