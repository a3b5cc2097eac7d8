"""The official checkpoint layout: our weights renamed into it and back, prefixes, errors."""

import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.official import from_official, load_official, strip_prefixes, to_official

KEYS_FILE_SUDOKU = {
    "_orig_mod.model.inner.H_init", "_orig_mod.model.inner.L_init",
    "_orig_mod.model.inner.embed_tokens.embedding_weight", "_orig_mod.model.inner.lm_head.weight",
    "_orig_mod.model.inner.q_head.weight", "_orig_mod.model.inner.q_head.bias",
    "_orig_mod.model.inner.puzzle_emb.weights",
} | {f"_orig_mod.model.inner.L_level.layers.{i}.{m}.{p}.weight"
     for i in (0, 1) for m in ("mlp_t", "mlp") for p in ("gate_up_proj", "down_proj")}


def tiny(**overrides: object) -> ModelConfig:
    base = dict(hidden_size=32, num_heads=4, recursions=2, latent_updates=2)
    return ModelConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_round_trip_through_official_layout() -> None:
    config = tiny(puzzle_emb_len=16, puzzle_emb_dim=32)
    model = TRM(config).eval()
    official = to_official(model.state_dict(), config.num_layers)
    assert set(official) == KEYS_FILE_SUDOKU
    assert official["_orig_mod.model.inner.H_init"].dtype == torch.bfloat16
    back = load_official(official, config).eval()
    tokens = torch.randint(1, 11, (2, 81))
    with torch.no_grad():
        a = model(model.initial_state(2), tokens)
        b = back(back.initial_state(2), tokens)
    # H_init/L_init pass through bf16 as the official saves them; the rest is exact.
    torch.testing.assert_close(back.y_init, model.y_init.bfloat16().float())
    assert a.logits.shape == b.logits.shape
    for key, value in model.state_dict().items():
        if key not in ("y_init", "z_init"):
            torch.testing.assert_close(back.state_dict()[key], value)


def test_attention_round_trip_is_exact() -> None:
    config = tiny(token_mixer="attention", position_encoding="rope", seq_len=36, vocab_size=6)
    model = TRM(config)
    model.y_init.copy_(model.y_init.bfloat16().float())
    model.z_init.copy_(model.z_init.bfloat16().float())
    back = load_official(to_official(model.state_dict(), 2, prefix="module._orig_mod."), config)
    tokens = torch.randint(1, 6, (2, 36))
    with torch.no_grad():
        torch.testing.assert_close(back(back.initial_state(2), tokens).logits,
                                   model(model.initial_state(2), tokens).logits)


def test_prefixes_are_stripped() -> None:
    assert strip_prefixes("module._orig_mod.model.inner.lm_head.weight") == "lm_head.weight"
    assert strip_prefixes("lm_head.weight") == "lm_head.weight"


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match="unexpected key.*bogus"):
        from_official({"_orig_mod.model.inner.bogus": torch.zeros(1)}, 2)


def test_shape_mismatch_names_the_weight() -> None:
    state = to_official(TRM(tiny()).state_dict(), 2)
    with pytest.raises(ValueError, match=r"token_embedding.weight: checkpoint shape \(11, 32\)"):
        load_official(state, tiny(vocab_size=12))
