"""Settings, the model registry (defaults, versions, broken files), /v1/models, OpenAPI, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from http_helpers import MAX_STEPS, MODEL_ID

from app.__main__ import build_parser, main
from app.jobs import JobStore
from app.metrics import Metrics
from app.registry import ModelRegistry, UnknownModel
from app.runners import make_runner
from app.service import SolveService
from app.settings import Settings
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.inference import resolve_precision
from trm_core.model import TRM


def test_settings_read_trm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRM_API_KEYS", "key-one, key-two")
    monkeypatch.setenv("TRM_DEFAULT_MODELS", "trm-sudoku-tiny@1")
    monkeypatch.setenv("TRM_MAX_BATCH_SIZE", "4")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["key-one", "key-two"]
    assert "key-one" not in repr(settings)
    assert settings.default_models == ["trm-sudoku-tiny@1"]
    assert settings.slots_for("cuda") == 4 and settings.queue_for(4) == 16


def test_settings_defaults_per_device() -> None:
    settings = Settings(max_batch_size=None, max_queue_size=None)
    assert settings.slots_for("cpu") == 16 and settings.slots_for("cuda:1") == 256
    assert settings.queue_for(16) == 64
    assert settings.resolved_device(cuda_available=False) == "cpu"
    assert settings.graceful_shutdown_s >= settings.shutdown_timeout_s


def _tiny(seed: int) -> TRM:
    torch.manual_seed(seed)
    return TRM(ModelConfig(hidden_size=32, num_heads=4, recursions=1, latent_updates=1,
                           max_supervision_steps=2))


@pytest.fixture
def model_zoo(tmp_path: Path) -> Path:
    save_checkpoint(tmp_path / "b" / "v1", _tiny(1), {"name": "b-model", "task": "sudoku"})
    save_checkpoint(tmp_path / "b" / "v2", _tiny(2),
                    {"name": "b-model", "task": "sudoku", "version": 2})
    save_checkpoint(tmp_path / "a" / "v1", _tiny(3), {"name": "a-model", "task": "sudoku",
                                                      "evaluation": {"exact": 0.5}})
    broken = tmp_path / "c" / "broken"
    save_checkpoint(broken, _tiny(4), {"name": "c-model", "task": "sudoku"})
    shutil.copy(tmp_path / "b" / "v1.safetensors", broken.with_suffix(".safetensors"))
    broken.with_suffix(".json").write_text("{not json")
    return tmp_path


def _registry(root: Path, **overrides: Any) -> ModelRegistry:
    registry = ModelRegistry(Settings(checkpoint_dir=root, device="cpu", max_batch_size=2,
                                      **overrides), Metrics())
    registry.load()
    return registry


def test_registry_loads_all_and_skips_broken(model_zoo: Path) -> None:
    registry = _registry(model_zoo)
    assert sorted(registry.entries) == ["a-model@1", "b-model@1", "b-model@2"]
    assert len(registry.load_errors) == 1 and "broken" in registry.load_errors[0]
    assert registry.defaults == {"sudoku": "a-model@1"}  # first name, highest version
    assert registry.resolve("sudoku", "b-model").id == "b-model@2"
    assert registry.resolve("sudoku", "b-model@1").id == "b-model@1"
    with pytest.raises(UnknownModel) as caught:
        registry.resolve("sudoku", "z-model")
    assert caught.value.available == ["a-model@1", "b-model@1", "b-model@2"]
    described = registry.entries["a-model@1"].describe(is_default=True)
    assert described["evaluation"] == {"exact": 0.5} and described["max_steps"] == 2


def test_configured_default_model_wins(model_zoo: Path) -> None:
    registry = _registry(model_zoo, default_models="b-model")
    assert registry.defaults == {"sudoku": "b-model@2"}


def test_models_endpoint(client: httpx.Client) -> None:
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == [MODEL_ID]
    model = client.get(f"/v1/models/{MODEL_ID}").json()
    assert model["task"] == "sudoku" and model["version"] == 1 and model["default"]
    assert len(model["checkpoint_sha256"]) == 64 and model["parameters"] > 0
    assert model["seq_len"] == 81 and model["vocab_size"] == 11
    assert model["max_steps"] == MAX_STEPS and model["device"] == "cpu"
    assert model["precision"] == resolve_precision("auto", "cpu").name  # TRM_DTYPE's default
    assert model["batching"] == {"slots": 16, "max_queue": 64}


def test_openapi_documents_the_api(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/solve/{task}", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events",
                 "/v1/models", "/v1/models/{model_id}", "/readyz", "/livez"):
        assert path in spec["paths"], path
    assert "SolveRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_cli_parses_flags() -> None:
    args = build_parser().parse_args(["--port", "9000", "--checkpoints", "ckpt",
                                      "--max-batch-size", "32"])
    assert args.port == 9000 and args.checkpoint_dir == Path("ckpt")
    assert args.max_batch_size == 32 and args.host is None
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0


def test_two_checkpoints_with_one_id_are_refused_loudly(
        model_zoo: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A model you trained under the shipped name must not silently replace (or be replaced
    by) the shipped one: both are refused with an error naming them, and readiness fails."""
    save_checkpoint(model_zoo / "mine" / "copy", _tiny(5), {"name": "b-model", "task": "sudoku",
                                                             "version": 2})
    registry = _registry(model_zoo)
    assert "b-model@2" not in registry.entries and "b-model@1" in registry.entries
    assert len(registry.refused) == 1
    message = registry.refused[0]
    assert "b-model@2" in message and str(model_zoo / "b" / "v2") in message
    assert str(model_zoo / "mine" / "copy") in message and "--checkpoints" in message
    assert any(r.levelname == "ERROR" and "b-model@2" in r.getMessage() for r in caplog.records)
    service = SolveService(registry.settings, registry, JobStore(60.0), registry.metrics)
    service.use(make_runner(service))
    assert service.readiness()["models_loaded"] == message


def test_card_only_entries_describe_models_as_loaded_ones(model_zoo: Path) -> None:
    """A broker-mode API replica reads cards and weight headers only (no engine), and says
    the same about each model as a replica that loaded it: id, config, sha256, parameters."""
    loaded = _registry(model_zoo)
    cards = ModelRegistry(loaded.settings, Metrics())
    cards.read_cards()
    assert sorted(cards.entries) == sorted(loaded.entries)
    assert cards.defaults == loaded.defaults and cards.load_errors == loaded.load_errors
    for model_id, entry in cards.entries.items():
        assert entry.loaded_engine is None and entry.loaded_thread is None
        assert entry.describe(True) == {**loaded.entries[model_id].describe(True),
                                        "warmed": True}


def test_trm_serve_help_names_itself(capsys: pytest.CaptureFixture) -> None:
    from training.cli import main as trm

    with pytest.raises(SystemExit):
        trm(["serve", "--help"])
    assert capsys.readouterr().out.startswith("usage: trm serve")
