"""What a PDS3 label beside an image says about its raw values (HiRISE RDR and friends).

Why: real HiRISE RDR RED products hold 10-bit DN in 16-bit containers, with a null value
and saturation codes (1/2 low, 1022/1023 high) that must be left out of a robust stretch;
browse products are 8-bit. Assuming a bit depth from configuration turned real DN 0-205
into 0.00-0.05 (issue 13). When a ``<stem>.LBL`` (or ``.lbl``) sits beside the image, its
``SAMPLE_BIT_MASK``, ``CORE_NULL`` and ``*_SATURATION`` keywords are read here; only plain
``KEY = value`` lines are parsed (no full ODL grammar is needed for these keywords).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mars_core.errors import MarsError

_LINE = re.compile(r"^\s*([A-Z0-9_:^]+)\s*=\s*(.+?)\s*$")
_BASED = re.compile(r"^(\d+)#([0-9A-Fa-f]+)#$")


@dataclass(frozen=True)
class PdsValues:
    """Raw-value facts of one product: valid bits, null and saturation codes."""

    label: Path
    bits: int | None = None
    null: float | None = None
    saturated: tuple[float, ...] = field(default_factory=tuple)


def _number(text: str, label: Path, key: str) -> float:
    """A PDS number: decimal, or radix form ``2#0000001111111111#`` / ``16#3FF#``."""
    text = text.strip().strip('"').split("<")[0].strip()
    m = _BASED.match(text)
    try:
        return float(int(m.group(2), int(m.group(1)))) if m else float(text)
    except ValueError as exc:
        raise MarsError(f"{label.name}: {key} = {text!r} is not a number") from exc


def label_for(image: Path) -> Path | None:
    """The PDS label beside ``image`` (same stem, ``.LBL`` or ``.lbl``), if any."""
    for suffix in (".LBL", ".lbl"):
        candidate = image.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def read_label(label: Path) -> PdsValues:
    """Bit depth (number of set bits of ``SAMPLE_BIT_MASK``), ``CORE_NULL`` and every
    ``*_SATURATION`` value (``CORE_LOW_REPR_SATURATION``, ``LOW_INSTR_SATURATION`` ...)."""
    bits: int | None = None
    null: float | None = None
    saturated: set[float] = set()
    for line in label.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        key, value = m.group(1).split(":")[-1], m.group(2)
        if key == "SAMPLE_BIT_MASK":
            bits = bin(int(_number(value, label, key))).count("1")
        elif key == "CORE_NULL":
            null = _number(value, label, key)
        elif key.endswith("_SATURATION"):
            saturated.add(_number(value, label, key))
    return PdsValues(label, bits, null, tuple(sorted(saturated)))
