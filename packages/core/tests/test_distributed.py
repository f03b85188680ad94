"""A real two-process ``torchrun`` job on CPU/gloo training the SYNTHETIC toy task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_plugin

from mars_core.config import Component
from mars_core.engine import TEST_EXIT_ENV, evaluate_model
from mars_core.tasks import TaskKind

WORKER = Path(__file__).parent / "engine_helpers" / "ddp_worker.py"
N_TRAIN, N_VAL, BATCH, EPOCHS = 16, 7, 4, 2  # 7 val samples: shards of 4 and 3, no padding


@pytest.mark.distributed
def test_torchrun_two_processes_on_gloo(tmp_path):
    pytest.importorskip("torch.distributed.run")
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MARS_CORE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop(TEST_EXIT_ENV, None)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
           str(tmp_path), "data.name=toy-augmented", f"data.n_train={N_TRAIN}", f"data.n_val={N_VAL}",
           "data.n_test=0", f"trainer.batch_size={BATCH}", f"trainer.epochs={EPOCHS}", "trainer.device=cpu",
           f"trainer.checkpoint_dir={tmp_path / 'ckpt'}", "trainer.monitor=val/loss", "trainer.mode=min"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]

    # Each epoch the two ranks see disjoint halves that together cover the train set.
    per_epoch = N_TRAIN // 2 // BATCH
    for r in ranks:
        assert len(r["batches"]) == per_epoch * EPOCHS
    orders = []
    for e in range(EPOCHS):
        seen = [sum(r["batches"][e * per_epoch:(e + 1) * per_epoch], []) for r in ranks]
        assert not set(seen[0]) & set(seen[1])
        assert sorted(seen[0] + seen[1]) == list(range(N_TRAIN))
        orders.append(seen[0])
    assert orders[0] != orders[1]  # reshuffled per epoch (set_epoch)

    # DDP kept the replicas identical, buffers included, and both ranks agree on everything.
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert ranks[0]["history"][-1]["val/loss"] == ranks[1]["history"][-1]["val/loss"]
    assert not any(r["process_group_alive"] for r in ranks)

    # Only rank 0 used the tracker; rank 1 got a NullTracker.
    starts = sorted(p.name for p in tmp_path.glob("tracker-start-*"))
    assert len(starts) == 1 and starts[0].startswith("tracker-start-rank0-")
    calls = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {c["rank"] for c in calls} == {0}
    assert [c["call"] for c in calls][-1] == "finish"
    assert ranks[1]["run_id"] == ranks[0]["run_id"] and ranks[1]["model_uri"] is None

    # Sharded validation without padding is exact: a single process evaluating the same
    # weights on the whole split gets the same numbers.
    model = toy_plugin.TinyNet()
    model.load_state_dict(torch.load(tmp_path / "final_weights.pt", weights_only=True))
    val = toy_plugin.ToySource(n_val=N_VAL).dataset("val")
    single = evaluate_model(model, TaskKind.SEGMENTATION, val, [Component(name="binary_map")],
                            batch_size=BATCH, device="cpu")
    for k, v in single.items():
        assert ranks[0]["metrics"]["val"][k] == pytest.approx(v, abs=1e-6), k
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.pt", "last.pt"]
    ckpt = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["epoch"] == EPOCHS
