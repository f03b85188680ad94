"""Train the SYNTHETIC toy task in a fresh process (used by test_resume.py).

Usage: python train_toy.py OUT_DIR [--set key=value ...]
Writes OUT_DIR/result.pt (history and final weights) when training finishes; with
MARS_CORE_TEST_EXIT_AFTER_EPOCH=k in the environment the engine exits with status 3 after
epoch k's checkpoint, before anything is written here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import RecordingTracker, config, install  # noqa: E402

from mars_core.engine import train  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    overrides = [a for a in sys.argv[2:] if a != "--set"]
    install()
    summary = train(config(overrides), RecordingTracker(out))
    torch.save({"history": summary.history, "model": summary.model.state_dict(),
                "metrics": summary.metrics, "run_id": summary.run_id}, out / "result.pt")


if __name__ == "__main__":
    main()
