"""Each served model's portable bundle (training/bundle.py, the same files `trm export --bundle`
writes), built on its first request and kept in memory.

A bundle is built from the checkpoint's files at fp32, whatever precision the model is served at:
the served copy may be bf16 and belongs to its engine thread. Building exports the ONNX graph
(about 10 s for the tiny Sudoku model on 2 cores) on a worker thread, once per model however
many requests wait for it. Without the `onnx` extra, or for a task whose rules are not data, the
answer is a 501 saying so.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import io
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.errors import ApiError
from app.registry import ModelEntry
from trm_core.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


# The name under which `Bundle.content` and `Bundle.etag` answer for the whole zip.
ZIP = "bundle.zip"


@dataclass(frozen=True)
class Bundle:
    """A bundle's files by name (manifest.json, step.onnx, solve.py). Built once per model, so
    its zip and every ETag are computed once too, not per request."""

    model_id: str
    files: dict[str, bytes]

    @functools.cached_property
    def _zip(self) -> bytes:
        """The files in one zip archive, under a folder named after the model."""
        folder = self.model_id.replace("@", "-v")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in self.files.items():
                # A fixed date keeps the archive's bytes (and so its ETag) the same every time.
                info = zipfile.ZipInfo(f"{folder}/{name}", date_time=(2025, 1, 1, 0, 0, 0))
                archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
        return buffer.getvalue()

    @functools.cached_property
    def _etags(self) -> dict[str, str]:
        return {name: f'"{hashlib.sha256(self.content(name)).hexdigest()}"'
                for name in (*self.files, ZIP)}

    def content(self, name: str) -> bytes:
        """A file's bytes, or the zip of all of them for `ZIP`."""
        return self._zip if name == ZIP else self.files[name]

    def etag(self, name: str) -> str:
        """The content's sha256, quoted as an ETag."""
        return self._etags[name]


class BundleStore:
    """Bundles by model id, each built once."""

    def __init__(self) -> None:
        self._bundles: dict[str, Bundle] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, entry: ModelEntry) -> Bundle:
        """The model's bundle; ApiError 501 when it cannot have one."""
        bundle = self._bundles.get(entry.id)
        if bundle is not None:
            return bundle
        async with self._locks.setdefault(entry.id, asyncio.Lock()):
            if entry.id not in self._bundles:
                check_bundleable(entry)
                self._bundles[entry.id] = await asyncio.to_thread(build_bundle, entry)
        return self._bundles[entry.id]


def check_bundleable(entry: ModelEntry) -> None:
    """ApiError 501 when this installation or the model's task cannot make a bundle."""
    if importlib.util.find_spec("onnxscript") is None:
        raise ApiError(501, "bundle-unavailable", "model bundles need the onnx extra on the "
                       "server: pip install 'trm-serve[onnx]'")
    from training.bundle import NotBundleable, task_rules

    try:
        task_rules(entry.task)
    except NotBundleable as exc:
        raise ApiError(501, "bundle-unavailable", f"{entry.id}: {exc}") from None


def build_bundle(entry: ModelEntry) -> Bundle:
    """Export the model's bundle from its checkpoint files (blocking: seconds)."""
    from training.bundle import FILES, write_bundle

    checkpoint = load_checkpoint(entry.checkpoint.path)  # a fresh fp32 copy on the CPU
    with tempfile.TemporaryDirectory(prefix="trm-bundle-") as folder:
        write_bundle(checkpoint, Path(folder))
        files = {name: (Path(folder) / name).read_bytes() for name in FILES}
    log.info("built the bundle of %s (%d bytes)", entry.id, sum(map(len, files.values())))
    return Bundle(entry.id, files)
