"""Write deploy/requirements.lock: the exact runtime dependency set of the container image.

    python scripts/image_lock.py   (or `make image-lock`; run it on Python 3.11, the image's)

The package is installed into a fresh venv and `pip freeze` gives the pins. The image's Python
is some 3.11 patch release (the pinned python image tracks the newest one, Debian bookworm's is
3.11.2), and a few dependencies are needed only below some patch level (redis needs
async-timeout before 3.11.3): those are pinned too, under their own marker, so the lock is
exact on every 3.11. The Dockerfile installs the lock with --no-deps and `pip check` proves it
complete; tests/deploy/test_image.py proves it holds nothing more than pyproject.toml needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"
# The oldest Python the image may run on; markers that hold there but not here are pinned too.
OLDEST = {"python_version": "3.11", "python_full_version": "3.11.0", "implementation_version": "3.11.0"}

HEADER = """\
# Exact runtime dependency versions baked into the container image (deploy/Dockerfile),
# installed with --no-deps. Regenerate after changing pyproject.toml dependencies: make image-lock
"""

# Run inside the lock venv: every distribution's version and requirements, and which of them
# are unmet here but needed on the oldest 3.11.
_CONDITIONAL = """
import importlib.metadata as m, json, sys
from pip._vendor.packaging.markers import default_environment
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
oldest = json.loads(sys.argv[1])
installed = {canonicalize_name(d.metadata["Name"]) for d in m.distributions()}
here = default_environment()
found = {}
for dist in m.distributions():
    for spec in dist.requires or []:
        req = Requirement(spec)
        if req.marker is None or canonicalize_name(req.name) in installed:
            continue
        if not req.marker.evaluate({**here, "extra": ""}) and req.marker.evaluate({**here, **oldest, "extra": ""}):
            found[canonicalize_name(req.name)] = [str(req.specifier), str(req.marker)]
print(json.dumps(found))
"""


def _freeze(pip: Path) -> list[str]:
    out = subprocess.run([str(pip), "freeze", "--exclude", "agent-gateway"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line and not line.startswith("#")]


def main() -> int:
    if sys.version_info[:2] != (3, 11):
        print(f"image_lock: run on Python 3.11 (the image's), not {sys.version.split()[0]}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="agw-lock-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(work)], check=True)
        pip, python = work / "bin" / "pip", work / "bin" / "python"
        subprocess.run([str(pip), "install", "-q", str(ROOT)], check=True)
        pins = _freeze(pip)
        conditional: dict[str, list[str]] = json.loads(
            subprocess.run(
                [str(python), "-c", _CONDITIONAL, json.dumps(OLDEST)], capture_output=True, text=True, check=True
            ).stdout
        )
        lines = list(pins)
        for name, (specifier, marker) in sorted(conditional.items()):
            subprocess.run([str(pip), "install", "-q", f"{name}{specifier}"], check=True)
            added = [line for line in _freeze(pip) if line not in pins]
            lines += [f"{line} ; {marker}" for line in added]
            pins += added
        LOCK.write_text(
            HEADER + "".join(f"{line}\n" for line in sorted(lines, key=lambda line: line.split("==")[0].lower())),
            encoding="utf-8",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"image_lock: wrote {LOCK.relative_to(ROOT)} ({len(lines)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
