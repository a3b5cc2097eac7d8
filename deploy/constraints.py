"""The pinned dependency set of the service image: every package that
`pip install '.[serve,scale,onnx]'` brings in, at one version each, except torch (the image
installs torch first from the index that matches its device, pinned by the Dockerfile's
TORCH_SPEC) and what only torch needs. (onnx: the service builds browser bundles with it.)

    python deploy/constraints.py --write    # after changing dependencies: re-pin from this env
    python deploy/constraints.py --check    # CI: the file is current (exit 1 and a diff if not)

The set is read from the installed distributions' metadata, starting at this project's
requirements with those extras and following each requirement whose markers hold here. CI
installs with `-c deploy/constraints.txt`, so what is tested is what the image installs; the
Dockerfile installs the file before copying the code, so a code change reuses the cached
dependency layer."""

from __future__ import annotations

import argparse
import difflib
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "trm-serve"
EXTRAS = ("serve", "scale", "onnx")
# Installed with the image's torch from the device's index, not from this file.
TORCH_ONLY = {"torch"}
FILE = Path(__file__).with_name("constraints.txt")
HEADER = ("# The service image's dependencies, pinned (deploy/constraints.py writes and checks "
          "this file).\n# torch is pinned separately: the Dockerfile's TORCH_SPEC.\n")


def _requirements(dist: str, extras: tuple[str, ...]) -> list[Requirement]:
    """`dist`'s requirements that apply here with `extras` (markers evaluated)."""
    found = []
    for text in metadata.requires(dist) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in extras or ("",)):
            found.append(requirement)
    return found


def closure() -> dict[str, str]:
    """Canonical name -> installed version of everything the project's service extras pull in
    (not torch, and not what is reached only through torch)."""
    pinned: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(PROJECT, EXTRAS)]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        dist, extras = pending.pop()
        if (dist, extras) in seen:
            continue
        seen.add((dist, extras))
        for requirement in _requirements(dist, extras):
            name = canonicalize_name(requirement.name)
            if name in TORCH_ONLY:
                continue
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                raise SystemExit(f"{name} (needed by {dist}) is not installed; install "
                                 f"'.[{','.join(EXTRAS)}]' first") from None
            if not requirement.specifier.contains(version, prereleases=True):
                raise SystemExit(f"installed {name} {version} does not satisfy {dist}'s "
                                 f"{requirement}")
            pinned[name] = version
            pending.append((name, tuple(sorted(requirement.extras))))
    return dict(sorted(pinned.items()))


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    wanted = render(closure())
    if args.write:
        FILE.write_text(wanted)
        return 0
    current = FILE.read_text() if FILE.exists() else ""
    if current == wanted:
        return 0
    sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                               str(FILE), "installed"))
    print(f"{FILE} is stale: run `python deploy/constraints.py --write`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
