"""Model ``ensemble``: several landslide models held in ONE module.

Why one module: a registered model in mars-core is one ``nn.Module`` rebuilt from its run
config (``model.name`` + parameters) and one state dict. Holding every member in an
``nn.ModuleList`` means an ensemble is saved, registered, loaded from MLflow, evaluated and
run by ``mars-core predict`` exactly like a single model; nothing in the core knows about it.

Output: ``logit(mean_m sigmoid(z_m))``, the logit of the members' mean probability, so
thresholding it at 0.5 is thresholding the averaged probability (the usual probability
ensemble). Trained through ``mars-core run``, all members learn together from the loss on
that averaged output (same batches; different random initialisations); members trained on
their own can be combined with :func:`from_members`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mars_core.errors import MarsError

#: Probabilities are clamped to [EPS, 1 - EPS] before the logit, so the output stays finite.
EPS = 1e-6


class Ensemble(nn.Module):
    """Mean probability of ``members`` (each maps an image [B,C,H,W] to logits [B,1,H,W])."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise MarsError("model.members: an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(image).float().sigmoid() for m in self.members]).mean(0)
        return torch.logit(probs.clamp(EPS, 1 - EPS))


def _member_spec(spec: str | Mapping[str, Any], index: int) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        params = {k: v for k, v in spec.items() if k != "name"}
        return str(spec["name"]), params
    raise MarsError(f"model.members[{index}] must be a model name or a mapping with 'name' "
                    f"(and that model's parameters), got {spec!r}")


def ensemble(members: Sequence[str | Mapping[str, Any]] = ("segformer", "segformer"),
             in_channels: int = 7) -> nn.Module:
    """``model.members``: names (``[segformer, unet]``) or mappings (``[{name: segformer,
    drop_path: 0.2}, ...]``) of registered landslide models; a name twice = two seeds."""
    from mars_landslide.plugin import MODEL_FACTORIES

    if isinstance(members, (str, Mapping)) or len(members) < 1:
        raise MarsError(f"model.members must be a non-empty list of model names or mappings, got {members!r}")
    built: list[nn.Module] = []
    for i, spec in enumerate(members):
        name, params = _member_spec(spec, i)
        if name not in MODEL_FACTORIES or name == "ensemble":
            allowed = ", ".join(n for n in MODEL_FACTORIES if n != "ensemble")
            raise MarsError(f"model.members[{i}]: unknown member model {name!r}; allowed: {allowed}")
        try:
            built.append(MODEL_FACTORIES[name](in_channels=in_channels, **params))
        except TypeError as exc:
            raise MarsError(f"model.members[{i}] ({name}): {exc}") from None
    return Ensemble(built)


def from_members(models: Sequence[nn.Module]) -> Ensemble:
    """An ensemble of already trained members (their weights are kept as they are)."""
    return Ensemble(list(models))
