"""Model ``icepatch-ensemble`` and ``mars-core icepatch ensemble``: icepatch models trained in
separate runs, averaged into one model.

Why: in the 5-fold CV two runs of the same recipe that differed only in ``trainer.seed``
were up to 0.19 balanced accuracy apart on one fold (BENCHMARK.md). Most of that is
run-to-run variance of one small network trained on four ice observations per class, and
the mean probability of independently trained runs averages it out (figures in
BENCHMARK.md). The members are trained by separate ``mars-core run`` calls (their own
initialisation, batch order and augmentation draws), not jointly in one module: trained on
the loss of their averaged output, ensemble members co-adapt and lose the diversity that
makes the average better than one run.

One module, so the ensemble is saved, evaluated, calibrated and run by ``predict`` and
``icepatch verdicts`` exactly like a single model. Its output is the log of the members'
mean softmax probability (the softmax of it is that mean), and it carries its own decision
threshold buffer (:mod:`mars_icepatch.threshold`), 0.5 until ``icepatch calibrate`` chooses
one; a member keeps the threshold it was saved with.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mars_core.errors import MarsError
from mars_icepatch.plugin import MEMBER_FACTORIES
from mars_icepatch.threshold import with_decision_threshold

NAME = "icepatch-ensemble"
#: Mean probabilities are clamped to at least EPS before the log, so the output stays finite.
EPS = 1e-7
#: Contract fields every member must share (what the model is fed and what it outputs).
SHARED_CONTRACT = ("kind", "bands", "normalisation", "tile_size", "nodata", "classes", "subclasses")
#: Data settings every member must share (how a chip becomes the model's input).
SHARED_DATA = ("input_size", "chip_stretch", "hot_pixels")


class MeanProbability(nn.Module):
    """log of the mean softmax probability of ``members`` (each: image [B,1,H,W] -> logits [B,K])."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 1:
            raise MarsError("an icepatch ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.training:  # see the module docstring: members are trained in separate runs
            raise MarsError(f"{NAME} is not trained as one model: train each member with `mars-core run "
                            "icepatch --set trainer.seed=N`, then combine them with `mars-core icepatch ensemble`")
        probs = torch.stack([m(image).float().softmax(1) for m in self.members]).mean(0)
        return probs.clamp_min(EPS).log()


def icepatch_ensemble(in_channels: int = 1, num_classes: int = 2,
                      members: Sequence[Mapping[str, Any]] = ({"name": "xception-small"},) * 2,
                      subclasses: Sequence[int] | None = None) -> nn.Module:
    """``model.members``: one mapping per member, ``{name: xception-small, <its parameters>}``
    (as written by ``mars-core icepatch ensemble``; a registered icepatch model name).
    ``subclasses`` (from the members' shared contract) goes to every member."""
    if isinstance(members, (str, Mapping)) or len(members) < 1:
        raise MarsError(f"model.members must be a non-empty list of {{name: MODEL, ...}} mappings, got {members!r}")
    built: list[nn.Module] = []
    for i, spec in enumerate(members):
        if not isinstance(spec, Mapping) or spec.get("name") not in MEMBER_FACTORIES:
            raise MarsError(f"model.members[{i}]: expected a mapping whose name is one of "
                            f"{', '.join(MEMBER_FACTORIES)}, got {spec!r}")
        params = {k: v for k, v in spec.items() if k not in ("name", "in_channels", "num_classes")}
        if subclasses:
            params.setdefault("subclasses", subclasses)
        try:
            built.append(MEMBER_FACTORIES[spec["name"]](in_channels=in_channels, num_classes=num_classes, **params))
        except (TypeError, ValueError) as exc:
            raise MarsError(f"model.members[{i}] ({spec['name']}): {exc}") from None
    return with_decision_threshold(MeanProbability(built))


def _data_settings(cfg: Any) -> dict[str, Any]:
    params = cfg.data.model_dump()
    return {k: params.get(k) for k in SHARED_DATA}


def combine(uris: Sequence[str]) -> tuple[nn.Module, Any, Any]:
    """Load every model in ``uris`` (trained icepatch models), check they take the same input,
    and return the ensemble with its configuration and input contract (threshold 0.5)."""
    from mars_core.config import Component
    from mars_core.tracking.model_io import load_model

    if len(uris) < 2:
        raise MarsError("icepatch ensemble: give at least two --model (one model is not an ensemble)")
    loaded = [load_model(u) for u in uris]
    first = loaded[0]
    for uri, m in zip(uris, loaded, strict=True):
        if m.cfg.task != "icepatch":
            raise MarsError(f"{uri}: a model of task {m.cfg.task!r}, not icepatch")
        if m.cfg.model.name not in MEMBER_FACTORIES:
            raise MarsError(f"{uri}: model {m.cfg.model.name!r} cannot be a member "
                            f"(members: {', '.join(MEMBER_FACTORIES)}; an ensemble is not nested)")
        for field in SHARED_CONTRACT:
            if getattr(m.contract, field) != getattr(first.contract, field):
                raise MarsError(f"{uri}: its input contract differs from {uris[0]} in {field!r}; "
                                "members must take the same input")
        if _data_settings(m.cfg) != _data_settings(first.cfg):
            raise MarsError(f"{uri}: its data settings {_data_settings(m.cfg)} differ from {uris[0]}'s "
                            f"{_data_settings(first.cfg)}; members must prepare chips the same way")
    specs = [{"name": m.cfg.model.name, **m.cfg.model.params} for m in loaded]
    model = with_decision_threshold(MeanProbability([m.model for m in loaded])).eval()
    cfg = first.cfg.model_copy(update={"model": Component(name=NAME, members=specs)})
    contract = first.contract.model_copy(update={"threshold": 0.5})
    return model, cfg, contract


def combine_and_save(uris: Sequence[str], out: Path | None, register: bool) -> dict[str, Any]:
    """:func:`combine`, then save the ensemble as a model directory at ``out`` (which must not
    exist) and/or log it into a new run of the task's experiment and register a version
    (never the champion: it was not ranked on the members' validation metric,
    :mod:`mars_core.tracking.composed`)."""
    from mars_core.tracking.model_io import save_model_dir

    if out is None and not register:
        raise MarsError("icepatch ensemble: give --out DIR, --register, or both")
    if out is not None and out.exists():
        raise MarsError(f"model directory {out} already exists")
    model, cfg, contract = combine(uris)
    info: dict[str, Any] = {"members": len(uris), "models": [m["name"] for m in cfg.model.params["members"]]}
    if out is not None:
        save_model_dir(model, cfg, contract, out)
        info["out"] = str(out)
    if register:
        from mars_core.tracking.composed import log_and_register

        params = {f"member_{i}": uri for i, uri in enumerate(uris)}
        try:
            info.update(log_and_register(model, cfg, contract, run_name=NAME, params={"model.name": NAME, **params},
                                         sources=list(uris)))
        except BaseException:
            if out is not None:  # all or nothing: the directory did not exist before this call
                shutil.rmtree(out, ignore_errors=True)
            raise
    return info
