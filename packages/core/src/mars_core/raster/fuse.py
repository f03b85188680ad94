"""Inference-only rewrite of a model: batch norm folded into the convolution before it.

Why: in evaluation a ``BatchNorm2d`` is a fixed per-channel affine map, so when it reads
nothing but the output of a convolution it can be folded into that convolution's weights
and bias. On CPU the separate batch-norm pass over every activation map is a large share of
a forward pass for the task models (a fifth to a quarter of the ResNet-50 of icefrag, see
packages/icefrag/BENCHMARK.md "Throughput"); folding removes it and gives the same outputs to
float rounding.

How, without knowing the model: the structure is read with ``torch.fx`` from the model's own
code, never guessed from module names. Only modules whose ``forward`` actually ran during one
real batch are traced (a model may call its submodules' children directly, bypassing the
parent's ``forward``, as icefrag's Siamese encoder does); a module that cannot be traced
(data- or shape-dependent Python control flow) is skipped and its children are tried
instead. In a traced graph a convolution/batch-norm pair is folded only if every call of
that convolution feeds only that batch norm and every call of that batch norm reads only
that convolution (a shared module called at several places is folded only if all its calls
fit). The rewrite works on a copy of the module tree that shares the original's tensors
(never written to): the caller's model is never changed. The caller
compares the rewrite's output with the original's on a real batch before using it
(:func:`mars_core.raster.predict.predict_scene`).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def called_modules(model: nn.Module, run: Callable[[], object]) -> set[str]:
    """Qualified names of the submodules whose ``forward`` ran during ``run()`` ("" = the root)."""
    names = {id(m): name for name, m in model.named_modules()}
    seen: set[str] = set()
    handles = [m.register_forward_pre_hook(lambda mod, _args: seen.add(names[id(mod)]))
               for m in model.modules()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    if not isinstance(bn, _NORMS) or bn.training or not bn.track_running_stats or bn.running_mean is None:
        return False
    if isinstance(conv, _CONVS):
        return not conv.training and conv.out_channels == bn.num_features
    # fuse_conv_bn_eval scales a transposed weight [in, out/groups, ...] along dim 1: one group only
    return isinstance(conv, _TRANSPOSED) and not conv.training and conv.groups == 1 and \
        conv.out_channels == bn.num_features


def _fold_graph(gm: fx.GraphModule) -> int:
    """Fold conv -> batch-norm pairs of one traced module in place; returns how many were folded."""
    # Values computed and never used (e.g. a shape test that only matters in training) would
    # count as extra users of a convolution's output.
    gm.graph.eliminate_dead_code()
    modules = dict(gm.named_modules())
    calls = Counter(n.target for n in gm.graph.nodes if n.op == "call_module")
    pairs: dict[tuple[str, str], list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        if _foldable(modules[src.target], modules[node.target]):
            pairs.setdefault((src.target, node.target), []).append(node)
    convs = Counter(c for c, _ in pairs)
    norms = Counter(b for _, b in pairs)
    folded = 0
    for (conv_name, bn_name), bn_nodes in pairs.items():
        # every call of both modules is this pairing, and neither module pairs with another one
        if calls[conv_name] != len(bn_nodes) or calls[bn_name] != len(bn_nodes) or \
                convs[conv_name] != 1 or norms[bn_name] != 1:
            continue
        _set_submodule(gm, conv_name, _folded_conv(modules[conv_name], modules[bn_name]))
        for node in bn_nodes:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
        folded += 1
    if folded:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return folded


def _folded_conv(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A new convolution module computing ``bn(conv(x))``. Shallow: only weight and bias are new
    (a deep copy of every convolution would copy all the weights once more for nothing)."""
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias, transpose=isinstance(conv, _TRANSPOSED))
    if conv.weight.dim() == 4 and conv.weight.is_contiguous(memory_format=torch.channels_last):
        weight = nn.Parameter(weight.detach().contiguous(memory_format=torch.channels_last), weight.requires_grad)
    fused = copy.copy(conv)
    fused._parameters = {**conv._parameters, "weight": weight, "bias": bias}
    return fused


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, leaf, module)


def _has_pair_candidates(module: nn.Module) -> bool:
    kinds = {type(m) for m in module.modules()}
    return any(issubclass(k, _NORMS) for k in kinds) and any(issubclass(k, _CONVS + _TRANSPOSED) for k in kinds)


def fold_batchnorm(model: nn.Module, called: set[str]) -> tuple[nn.Module, int]:
    """A deep copy of ``model`` (in eval mode) with conv -> batch-norm pairs folded.

    ``called``: the names :func:`called_modules` returned for a real batch. Returns the
    copy and the number of folded pairs (0: the copy is unchanged; use the original).
    """
    # Module structure copied, tensors shared (read-only here): only folded weights are new.
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    folded_model = copy.deepcopy(model, memo=shared).eval()
    total = 0

    def visit(module: nn.Module, name: str) -> nn.Module:
        nonlocal total
        if not _has_pair_candidates(module):
            return module
        if name in called and not isinstance(module, _CONVS + _TRANSPOSED + _NORMS):
            try:
                gm = fx.symbolic_trace(module)
            except Exception:  # noqa: BLE001 - untraceable Python control flow: try the children
                gm = None
            if gm is not None:
                n = _fold_graph(gm)
                if n:
                    total += n
                    return gm
                # nothing foldable at this level (e.g. pairs split across calls): go deeper
        for child_name, child in list(module.named_children()):
            new = visit(child, f"{name}.{child_name}" if name else child_name)
            if new is not child:
                setattr(module, child_name, new)
        return module

    root = visit(folded_model, "")
    return root, total

