"""The small bundled sample: real MMLS patches stored compactly inside the package.

``data/mmls_sample.npz`` holds a deterministic subset of the published train partition
(split ``train``) and validation partition (split ``val``) so that ``mars-core run
landslide`` works on a fresh machine without downloads. See ``data/NOTICE.md`` for the
source, license (MIT) and citation.

Storage (to stay under 1.5 MB): every channel is stored as 8-bit codes ``round(255 * x)``.
RGB (0-2) and grayscale (6) are 8-bit in the source, so they are exact; DEM, thermal
inertia and slope (3-5) are quantised to 1/255 (max error 0.002 on a [0, 1] scale). All
but thermal inertia (which is noisy) are stored as horizontal differences (mod 256), and the
codes are LZMA-compressed (about 55 kB per patch). Masks are bit-packed.
Rebuild with ``python -m mars_landslide.sample SRC_ROOT``.
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import numpy as np

from mars_core.errors import MarsError

SAMPLE_PATH = Path(__file__).with_name("data") / "mmls_sample.npz"
_DELTA_CHANNELS = [0, 1, 2, 3, 5, 6]
SAMPLE_SIZES = {"train": 18, "val": 8}


def _encode(images: np.ndarray) -> np.ndarray:
    codes = np.round(images * 255).clip(0, 255).astype(np.uint8)
    d = codes[:, _DELTA_CHANNELS].astype(np.int16)
    d[..., 1:] = d[..., 1:] - d[..., :-1]
    codes[:, _DELTA_CHANNELS] = (d % 256).astype(np.uint8)
    return codes


def _decode(codes: np.ndarray) -> np.ndarray:
    codes = codes.copy()
    d = codes[:, _DELTA_CHANNELS].astype(np.int64)
    codes[:, _DELTA_CHANNELS] = (np.cumsum(d, axis=-1) % 256).astype(np.uint8)
    return codes.astype(np.float32) / 255.0


def load_sample(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images [N,7,128,128] float32, masks [N,1,128,128] float32, patch names)."""
    if not SAMPLE_PATH.is_file():
        raise MarsError(f"bundled MMLS sample missing at {SAMPLE_PATH}; reinstall mars-landslide")
    with np.load(SAMPLE_PATH) as z:
        shape = tuple(int(v) for v in z[f"{split}_shape"])
        raw = lzma.decompress(z[f"{split}_images"].tobytes())
        images = _decode(np.frombuffer(raw, dtype=np.uint8).reshape(shape))
        n = images.shape[0]
        masks = np.unpackbits(z[f"{split}_masks"])[: n * 128 * 128].reshape(n, 1, 128, 128)
        names = [str(s) for s in z[f"{split}_names"]]
    return images, masks.astype(np.float32), names


def build_sample(src_root: str | Path, out: Path = SAMPLE_PATH) -> Path:
    """Pick evenly spaced patches (sorted by name) from each published partition."""
    import warnings

    from mars_landslide.mmls import SPLIT_DIRS, find_pairs, read_image, read_mask

    arrays: dict[str, np.ndarray] = {}
    for split, n in SAMPLE_SIZES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pairs = find_pairs(Path(src_root) / SPLIT_DIRS[split])
        idx = np.linspace(0, len(pairs) - 1, n).round().astype(int)
        chosen = [pairs[i] for i in idx]
        images = np.stack([read_image(p) for p, _ in chosen])
        masks = np.stack([read_mask(m) for _, m in chosen]).astype(np.uint8)
        codes = _encode(images)
        arrays[f"{split}_images"] = np.frombuffer(lzma.compress(codes.tobytes(), preset=9), dtype=np.uint8)
        arrays[f"{split}_shape"] = np.array(codes.shape)
        arrays[f"{split}_masks"] = np.packbits(masks)
        arrays[f"{split}_names"] = np.array([p.stem for p, _ in chosen])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out


if __name__ == "__main__":  # pragma: no cover - maintenance tool
    print(build_sample(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mmls"))
