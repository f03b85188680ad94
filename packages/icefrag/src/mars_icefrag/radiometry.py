"""Optional radiometric matching of T2 to T1 (issue 13, item 1), part of the model.

Why: the robust per-scene stretch maps each date's 2nd/98th percentiles to 0/1, a
two-point linear match. Real dates can differ by more than that (a non-linear tone curve,
a different share of frost or shadow moving the percentiles). Two stronger matches:

* ``linear``: T2' = a * T2 + b fitted by least squares to T1 on the pixels that look
  unchanged: a first fit on all pixels, then ``ROUNDS`` refits on the pixels whose
  residual is below its ``KEEP`` quantile, so that fragments, shadows and other real
  change (a few % of a tile at most) do not pull the fit;
* ``histogram``: T2' takes, rank for rank, the values of T1 (exact histogram matching;
  changed pixels are too few to move the quantiles much).

Where it is applied, and why there: inside the model's ``forward``, per input tile and
channel, on the already-normalised dates (:class:`MatchedPair` wraps any pair model). The
option is the model parameter ``radiometric_match`` (``none`` default, ``linear``,
``histogram``), stored with the model's configuration beside its weights and input
contract; ``mars-core run``/``evaluate`` and ``mars-core predict`` rebuild the same
module, so training and prediction apply the same matching by construction, to tiles of
the same size (``data.tile`` is the contract's tile size). Whole-scene prediction is
not special-cased in the core's raster code.
"""

from __future__ import annotations

import torch
from torch import nn

METHODS = ("none", "linear", "histogram")
KEEP = 0.8  # share of pixels kept as "unchanged" by each refit of the linear match
ROUNDS = 2


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"radiometric_match must be one of {', '.join(METHODS)}, got {method!r}")
    return method


@torch.no_grad()
def match_linear(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """T2 mapped by a per-sample, per-channel robust linear fit to T1 ([B,C,H,W])."""
    x = t2.flatten(2).double()
    y = t1.flatten(2).double()
    keep = torch.ones_like(x, dtype=torch.bool)
    a = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    b = torch.zeros_like(a)
    for r in range(ROUNDS + 1):
        w = keep.to(x.dtype)
        n = w.sum(-1).clamp_min(1)
        mx, my = (w * x).sum(-1) / n, (w * y).sum(-1) / n
        vx = (w * (x - mx[..., None]) ** 2).sum(-1) / n
        cxy = (w * (x - mx[..., None]) * (y - my[..., None])).sum(-1) / n
        a = torch.where(vx > 1e-12, cxy / vx.clamp_min(1e-12), torch.ones_like(vx))
        b = my - a * mx
        if r < ROUNDS:
            res = (a[..., None] * x + b[..., None] - y).abs()
            keep = res <= torch.quantile(res.float(), KEEP, dim=-1, keepdim=True).double()
    return (a[..., None, None] * t2.double() + b[..., None, None]).to(t2.dtype)


@torch.no_grad()
def match_histogram(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """T2 with T1's values assigned rank for rank (per sample and channel, [B,C,H,W])."""
    x = t2.flatten(2)
    ref = torch.sort(t1.flatten(2), dim=-1).values
    order = torch.argsort(x, dim=-1)
    out = torch.empty_like(x)
    out.scatter_(-1, order, ref)
    return out.view_as(t2)


def match(t1: torch.Tensor, t2: torch.Tensor, method: str) -> torch.Tensor:
    """T2 matched to T1 by ``method`` (``none`` returns T2 unchanged)."""
    check_method(method)
    if method == "linear":
        return match_linear(t1, t2)
    if method == "histogram":
        return match_histogram(t1, t2)
    return t2


class MatchedPair(nn.Module):
    """``net(image1, match(image1, image2))``: a pair model with T2 matched to T1 first."""

    def __init__(self, net: nn.Module, method: str) -> None:
        super().__init__()
        self.net = net
        self.method = check_method(method)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return self.net(image1, match(image1, image2, self.method))


def with_match(net: nn.Module, method: str) -> nn.Module:
    """``net`` itself for ``none`` (its weights keep their names), else wrapped."""
    return net if check_method(method) == "none" else MatchedPair(net, method)
