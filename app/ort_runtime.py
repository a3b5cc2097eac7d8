"""The browser runtime the viewer's "run in this browser" loads: three files of the npm package
onnxruntime-web, fetched once into `app/static/ort/` (not kept in git: the WebAssembly file
alone is 14 MB) and checked byte for byte against the hashes below.

    python -m app.ort_runtime          # fetch (a no-op when the files are there and intact)

`.ci/run` and the Dockerfile run it; the page then works offline, since the service serves the
files itself. Without them the rest of the service works and the switch says what to run.
To update, change VERSION, TARBALL_SHA512 and FILES (app/static/ort/README.md says how).
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "1.30.0"
TARBALL = f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{VERSION}.tgz"
TARBALL_SHA512 = ("q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1Sig"
                  "qR4CXAfKYQ==")
# file in the package's dist/ -> sha256
FILES = {
    "ort.wasm.min.js": "faece07e84faa9001f5104bbe4e5c70861d06cb2376a0dea1fa0ad33a67adc81",
    "ort-wasm-simd-threaded.mjs":
        "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm":
        "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
}
FOLDER = Path(__file__).resolve().parent / "static" / "ort"


def missing(folder: Path = FOLDER) -> list[str]:
    """The runtime files that are absent or not the pinned bytes."""
    return [name for name, digest in FILES.items()
            if not (folder / name).exists()
            or hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest]


def fetch(folder: Path = FOLDER, timeout_s: float = 120.0) -> list[str]:
    """Download the pinned package and write the files `missing` names; returns them. Raises
    RuntimeError naming what does not match its hash."""
    wanted = missing(folder)
    if not wanted:
        return []
    with urllib.request.urlopen(TARBALL, timeout=timeout_s) as response:  # noqa: S310 (pinned https)
        tarball = response.read()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != TARBALL_SHA512:
        raise RuntimeError(f"{TARBALL}: sha512 {digest} is not the pinned {TARBALL_SHA512}")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in wanted:
            member = archive.extractfile(f"package/dist/{name}")
            if member is None:
                raise RuntimeError(f"{TARBALL} has no dist/{name}")
            data = member.read()
            if hashlib.sha256(data).hexdigest() != FILES[name]:
                raise RuntimeError(f"dist/{name} in {TARBALL} is not the pinned file")
            (folder / name).write_bytes(data)
    return wanted


def main() -> int:
    written = fetch()
    print(f"onnxruntime-web {VERSION}: " + (f"wrote {', '.join(written)}" if written else
                                            "already in place") + f" ({FOLDER})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
