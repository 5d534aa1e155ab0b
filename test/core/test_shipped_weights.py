"""The TDMI weights shipped in weights/: each file loads, carries the network it is documented as, and
the model card names its current sha256 (so the card's numbers cannot silently describe another file)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tdmi_core.models.configs import MODEL_CONFIGS, load_model_config
from tdmi_core.models.weights import load_weights
from tdmi_core.train.distill import baseline_config

# file -> the config it must carry (config/train/distill_movenet.yaml and distill_movenet_causal.yaml)
SHIPPED = {
    "tdmi_movenet.pt": MODEL_CONFIGS["tdmi_movenet"],
    "tdmi_movenet_single_frame.pt": baseline_config(MODEL_CONFIGS["tdmi_movenet"]),
    "tdmi_movenet_causal.pt": load_model_config("tdmi_movenet", window="causal"),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_carry_their_documented_network(repo_root: Path, name: str) -> None:
    path = repo_root / "weights" / name
    model, cfg = load_weights(path)
    assert cfg == SHIPPED[name]
    assert not any(p.isnan().any() for p in model.state_dict().values())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card = (repo_root / "weights" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert digest in card, f"weights/MODEL_CARD.md does not name {name}'s sha256 {digest}: update the card"


def test_default_runtime_config_serves_the_default_weights(repo_root: Path) -> None:
    from tdmi_core.runtime.config import RuntimeConfig

    runtime = RuntimeConfig()
    assert (runtime.model, runtime.weights, runtime.backend) == ("tdmi_movenet", "weights/tdmi_movenet.pt", "onnxruntime")
    assert (repo_root / runtime.weights).is_file()
