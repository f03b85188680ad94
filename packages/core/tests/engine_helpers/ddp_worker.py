"""One torchrun worker training the SYNTHETIC toy task (used by test_distributed.py).

Usage: torchrun --nproc_per_node=2 ddp_worker.py OUT_DIR [key=value ...]
Every rank writes OUT_DIR/rank{r}.json: the sample indices of each training batch it saw,
a hash of its final (best) weights and its final metrics. Every rank passes a
RecordingTracker to train(); only rank 0's should ever be used.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402

from mars_core.engine import train  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    common.install()
    summary = train(common.config(sys.argv[2:]), common.RecordingTracker(out))
    if rank == 0:
        torch.save(summary.model.state_dict(), out / "final_weights.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank,
        "world_size": int(os.environ["WORLD_SIZE"]),
        "batches": common.SEEN_INDICES,
        "weights_sha256": common.state_hash(summary.model.state_dict()),
        "metrics": summary.metrics,
        "history": summary.history,
        "run_id": summary.run_id,
        "model_uri": summary.model_uri,
        "process_group_alive": torch.distributed.is_initialized(),
    }))


if __name__ == "__main__":
    main()
