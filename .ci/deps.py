"""The runtime dependencies that pyproject.toml declares, for CI (one source of truth).

python3 .ci/deps.py floors     pip constraints pinning each one to its ">=" floor
python .ci/deps.py versions    the version of each one installed (run in a venv)
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared() -> list[tuple[str, str]]:
    """(name, version specifier) of each runtime dependency."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return [re.fullmatch(r"([A-Za-z0-9._-]+)\s*(.*)", d.strip()).groups() for d in deps]


def floors() -> list[str]:
    lines = []
    for name, spec in declared():
        lows = re.findall(r">=\s*([^,\s]+)", spec)
        if len(lows) != 1:
            sys.exit(f"deps.py: {name}{spec} must declare exactly one '>=' floor")
        lines.append(f"{name}=={lows[0]}")
    return lines


def versions() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name, _ in declared()]


if __name__ == "__main__":
    commands = {"floors": floors, "versions": versions}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    print("\n".join(commands[sys.argv[1]]()))
