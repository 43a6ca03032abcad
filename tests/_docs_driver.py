"""Runs one page's blocks (a JSON list) in order; used by tests/test_docs.py.

Python blocks share one namespace, a module installed as ``__main__`` (as when a script
runs, so annotations and pickling resolve names in it). A plain ``atdata-lite ...`` command
runs in this process through the click entry point (fast, and the same code as the console
script); a command with shell syntax (pipes, redirections, variables) runs with bash, where
``atdata-lite`` is this environment's console script. The first failure stops the page and
names the block (``file:line``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import traceback
import types
from pathlib import Path


def _needs_shell(command: str) -> bool:
    """Whether bash would do something to ``command`` (pipes, variables, unquoted globs)."""
    if any(ch in command for ch in "|&;<>$`\n"):
        return True
    return any(
        any(ch in word for ch in "*?[{~") and word[0] not in "'\"" for word in command.split()
    )


def run_command(command: str) -> int:
    """Run one shell line; return its exit code."""
    argv = shlex.split(command, comments=True)  # a trailing "# ..." explains the line
    if argv and argv[0] == "atdata-lite" and not _needs_shell(command):
        from atdata_lite.cli import main

        try:
            main.main(argv[1:], prog_name="atdata-lite", standalone_mode=True)
        except SystemExit as exc:
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        return 0
    return subprocess.run(["bash", "-c", command], timeout=180).returncode


def main(steps_file: str) -> int:
    steps = json.loads(Path(steps_file).read_text())
    page = types.ModuleType("__main__")
    sys.modules["__main__"] = page
    namespace = page.__dict__
    for step in steps:
        where = step["where"]
        if step["kind"] == "file":
            Path(step["marker"].split("=", 1)[1].strip()).write_text(step["code"])
            continue
        if step["kind"] == "python":
            print(f"--- python {where}", flush=True)
            try:
                exec(compile(step["code"], where, "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                print(f"FAILED: the python block at {where}", file=sys.stderr)
                return 1
            continue
        for command in step["commands"]:
            print(f"--- $ {command}   ({where})", flush=True)
            returncode = run_command(command)
            sys.stdout.flush()
            failed = returncode != 0
            if failed != (step["marker"] == "fails"):
                want = "to fail" if step["marker"] == "fails" else "exit code 0"
                print(
                    f"FAILED: `{command}` at {where} exited {returncode}; expected {want}",
                    file=sys.stderr,
                )
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
