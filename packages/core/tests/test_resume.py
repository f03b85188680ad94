"""Resume after a real kill: a process trained on the SYNTHETIC toy task exits abruptly
(``os._exit``) right after epoch 2's checkpoint; a new process resumes it; the result must
equal an uninterrupted run. The augmentation draws from the global torch RNG, the
optimizer keeps moments and the LR schedule steps, so every piece of resumable state
matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_plugin

from mars_core.config import load_task_config
from mars_core.engine import TEST_EXIT_ENV, train
from mars_core.errors import MarsError

SCRIPT = Path(__file__).parent / "engine_helpers" / "train_toy.py"
RUN = ["data.name=toy-augmented", "data.n_train=24", "data.n_val=8", "data.n_test=0",
       "trainer.epochs=4", "trainer.batch_size=8", "trainer.optimizer=adamw", "trainer.weight_decay=0.01",
       "trainer.scheduler.name=step", "trainer.scheduler.step_size=1", "trainer.scheduler.gamma=0.7",
       "trainer.grad_clip=1.0", "trainer.device=cpu", "trainer.monitor=val/loss", "trainer.mode=min"]


def launch(out: Path, *extra: str, exit_after: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MARS_CORE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop(TEST_EXIT_ENV, None)
    if exit_after is not None:
        env[TEST_EXIT_ENV] = str(exit_after)
    args = [sys.executable, str(SCRIPT), str(out), *RUN, f"trainer.checkpoint_dir={out / 'ckpt'}", *extra]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=300)
    return proc.returncode, output


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in history]


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    procs = [launch(clean), launch(killed, exit_after=2)]  # two cores: run them side by side
    (rc_clean, out_clean), (rc_killed, out_killed) = (finish(p) for p in procs)
    assert rc_clean == 0, out_clean
    assert rc_killed == 3, out_killed  # died in the test hook, not by finishing
    assert not (killed / "result.pt").exists()
    ckpt = torch.load(killed / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    assert not [p for p in (killed / "ckpt").iterdir() if p.name not in ("last.pt", "best.pt")]

    rc, out = finish(launch(killed, "trainer.resume=last"))
    assert rc == 0, out

    a = torch.load(clean / "result.pt", weights_only=True)
    b = torch.load(killed / "result.pt", weights_only=True)
    hist_a, hist_b = without_time(a["history"]), without_time(b["history"])
    assert len(hist_a) == len(hist_b)
    for row_a, row_b in zip(hist_a, hist_b, strict=True):  # pytest >= 9.2 refuses nested approx
        assert row_b == pytest.approx(row_a, rel=1e-6, abs=1e-7)
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-6, atol=1e-7)
    last_a = torch.load(clean / "ckpt" / "last.pt", weights_only=True)["model"]
    last_b = torch.load(killed / "ckpt" / "last.pt", weights_only=True)["model"]
    for k in last_a:
        torch.testing.assert_close(last_b[k], last_a[k], rtol=1e-6, atol=1e-7)

    # The resumed process reopened the killed process's tracker run and finished it.
    ev = events(killed)
    starts = [e for e in ev if e["call"] == "start"]
    assert len(starts) == 2 and starts[0]["resume_run_id"] is None
    assert starts[1]["resume_run_id"] == starts[0]["run_id"]
    assert [e["step"] for e in ev if e["call"] == "log_metrics"] == [1, 2, 3, 4]
    assert [e["call"] for e in ev][-1] == "finish" and b["run_id"] == starts[0]["run_id"]


def toy_cfg(ckpt: Path, *overrides: str):
    return load_task_config(toy_plugin.TASK_YAML, overrides=[
        f"trainer.checkpoint_dir={ckpt}", "trainer.device=cpu", "data.n_train=8", "data.n_val=4",
        "data.n_test=0", *overrides])


def test_incompatible_resume_is_refused(toy, tmp_path):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(MarsError, match="no checkpoint"):
        train(toy_cfg(ckpt, "trainer.resume=last"))
    train(toy_cfg(ckpt, "trainer.epochs=1"))
    with pytest.raises(MarsError) as err:
        train(toy_cfg(ckpt, "trainer.epochs=2", "trainer.lr=0.5", "trainer.resume=last"))
    assert "trainer.lr" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(MarsError, match="model.width"):
        train(toy_cfg(ckpt, "trainer.epochs=2", "model.width=4", f"trainer.resume={ckpt / 'last.pt'}"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MarsError, match="cannot read checkpoint"):
        train(toy_cfg(ckpt, f"trainer.resume={tmp_path / 'junk.pt'}"))
    # A compatible change (more epochs, progress off) continues where it stopped.
    summary = train(toy_cfg(ckpt, "trainer.epochs=2", "trainer.progress=false", "trainer.resume=last"))
    assert [h["epoch"] for h in summary.history] == [1, 2]
