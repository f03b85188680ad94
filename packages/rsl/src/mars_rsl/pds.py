"""PDS3 labels and the HiRISE RDR cumulative index.

Why a parser of our own: the column layout of ``RDRCUMINDEX.TAB`` is defined by its label
(``RDRCUMINDEX.LBL``: one ``OBJECT = COLUMN`` per column with ``START_BYTE`` (1-based) and
``BYTES``), and HiRISE has changed that layout between releases. Reading the layout from the
label, never from hard-coded offsets, keeps the crawler right when the archive changes. The
parser handles the subset of PDS3 ODL that labels of the index and of RDR products use:
``KEY = VALUE`` pairs, nested ``OBJECT``/``GROUP`` blocks, quoted strings that span lines,
``(a, b)`` sequences and ``<unit>`` suffixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mars_core.errors import MarsError

PRODUCTS = ("RED", "COLOR")
#: First ESP orbit: PSP is the Primary Science Phase (orbits below 11000), ESP after.
ESP_FIRST_ORBIT = 11000
OBS_RE = re.compile(r"^(?P<phase>[A-Z]{3})_(?P<orbit>\d{6})_(?P<target>\d{4})$")


@dataclass
class LabelObject:
    """One ``OBJECT``/``GROUP`` block (or the whole label): its keys and its sub-objects in order."""

    kind: str
    name: str
    keys: dict[str, Any] = field(default_factory=dict)
    children: list[LabelObject] = field(default_factory=list)

    def find(self, name: str) -> list[LabelObject]:
        """Every nested object named ``name`` (depth first)."""
        out = []
        for c in self.children:
            if c.name == name:
                out.append(c)
            out.extend(c.find(name))
        return out


def _value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith('"'):
        return raw.strip('"').strip()
    if raw.startswith("("):
        return [_value(v) for v in raw.strip("()").split(",") if v.strip()]
    raw = re.sub(r"\s*<[^>]*>$", "", raw)  # unit
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw.strip("'")


def parse_label(text: str) -> LabelObject:
    """Parse a PDS3 label into nested :class:`LabelObject` blocks (malformed text: MarsError)."""
    root = LabelObject("ROOT", "ROOT")
    stack = [root]
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].split("/*")[0].rstrip()
        i += 1
        if not line.strip():
            continue
        if line.strip() == "END":
            break
        if "=" not in line:
            line = line.strip() + " = "  # a bare END_OBJECT / END_GROUP
            if line.split()[0] not in ("END_OBJECT", "END_GROUP"):
                continue  # continuation of an unquoted value: PDS3 labels from HiRISE have none
        key, _, raw = line.partition("=")
        key, raw = key.strip(), raw.strip()
        # multi-line quoted strings and sequences
        while (raw.count('"') % 2 == 1 or (raw.startswith("(") and ")" not in raw)) and i < len(lines):
            raw += " " + lines[i].strip()
            i += 1
        if key in ("OBJECT", "GROUP"):
            obj = LabelObject(key, str(_value(raw)))
            stack[-1].children.append(obj)
            stack.append(obj)
        elif key in ("END_OBJECT", "END_GROUP"):
            if len(stack) == 1:
                raise MarsError(f"malformed PDS label: {key} without an open block")
            stack.pop()
        else:
            stack[-1].keys[key] = _value(raw)
    if len(stack) != 1:
        raise MarsError(f"malformed PDS label: OBJECT {stack[-1].name} is never closed")
    return root


@dataclass(frozen=True)
class Column:
    name: str
    start: int  # 0-based byte offset in the row
    nbytes: int
    data_type: str


def index_columns(label: LabelObject) -> tuple[list[Column], int]:
    """Column layout and row length of an index table from its label."""
    tables = [c for c in label.children if c.kind == "OBJECT" and c.name.endswith("TABLE")]
    if not tables:
        raise MarsError("index label has no *_TABLE object")
    table = tables[0]
    row_bytes = int(table.keys.get("ROW_BYTES") or label.keys.get("RECORD_BYTES") or 0)
    cols = []
    for c in table.children:
        if c.name != "COLUMN":
            continue
        try:
            cols.append(Column(str(c.keys["NAME"]), int(c.keys["START_BYTE"]) - 1, int(c.keys["BYTES"]),
                               str(c.keys.get("DATA_TYPE", "CHARACTER"))))
        except KeyError as exc:
            raise MarsError(f"index label: a COLUMN lacks {exc.args[0]}") from None
    if not cols or not row_bytes:
        raise MarsError("index label defines no columns or no ROW_BYTES")
    return cols, row_bytes


def _cell(col: Column, raw: str) -> Any:
    s = raw.strip().strip('"').strip()
    if col.data_type in ("ASCII_INTEGER", "INTEGER"):
        return int(s) if s else None
    if col.data_type in ("ASCII_REAL", "REAL"):
        return float(s) if s else None
    return s


def read_index(label_text: str, table: bytes) -> list[dict[str, Any]]:
    """Rows of an index table as dicts keyed by column name (layout from ``label_text``)."""
    cols, row_bytes = index_columns(parse_label(label_text))
    rows = []
    text = table.decode("latin-1")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) + 2 != row_bytes and len(line) != row_bytes:
            raise MarsError(f"index row {n} is {len(line)} bytes, the label says {row_bytes} (with CRLF)")
        try:
            rows.append({c.name: _cell(c, line[c.start:c.start + c.nbytes]) for c in cols})
        except ValueError as exc:
            raise MarsError(f"index row {n}: {exc}") from None
    return rows


@dataclass(frozen=True)
class Product:
    """One archive product: ``{obs}_{kind}.JP2`` at ``path`` (relative to the volume root)."""

    obs: str
    kind: str
    path: str
    orbit: int | None = None
    lat_min: float | None = None
    lat_max: float | None = None
    size: int | None = None  # bytes, where the index gives it

    @property
    def product_id(self) -> str:
        return f"{self.obs}_{self.kind}"

    @property
    def label_path(self) -> str:
        return self.path.rsplit(".", 1)[0] + ".LBL"


def product_path(obs: str, kind: str) -> str:
    """Archive path of a product built from its observation id (for ``--probe``)."""
    m = OBS_RE.match(obs)
    if not m:
        raise MarsError(f"'{obs}' is not an observation id like ESP_012345_1234")
    orbit = int(m["orbit"])
    lo = orbit // 100 * 100
    return f"RDR/{m['phase']}/ORB_{lo:06d}_{lo + 99:06d}/{obs}/{obs}_{kind}.JP2"


def probe_candidates(orbits: tuple[int, int], targets: list[str], kinds: list[str]) -> list[Product]:
    """Every product name the orbit range and target codes can form (PSP below 11000, ESP after)."""
    lo, hi = orbits
    if hi - lo > 100_000:
        raise MarsError("--probe over more than 100000 orbits: narrow --orbits")
    out = []
    for orbit in range(lo, hi + 1):
        phase = "PSP" if orbit < ESP_FIRST_ORBIT else "ESP"
        for t in targets:
            obs = f"{phase}_{orbit:06d}_{t}"
            for k in kinds:
                out.append(Product(obs, k, product_path(obs, k), orbit))
    return out


def _target_code(t: str) -> str:
    t = t.strip().upper()
    if re.fullmatch(r"\d{4}", t) or OBS_RE.match(t):
        return t
    raise MarsError(f"target code '{t}' is neither 4 digits (the tttt of ESP_oooooo_tttt) nor an observation id")


def parse_targets(spec: str | None) -> list[str]:
    """``--targets``: 4-digit target codes or full observation ids, comma-separated."""
    return [_target_code(t) for t in spec.split(",") if t.strip()] if spec else []


def select_products(rows: list[dict[str, Any]], orbits: tuple[int, int] | None = None,
                    targets: list[str] | None = None, lat: tuple[float, float] | None = None,
                    kinds: list[str] | None = None) -> list[Product]:
    """Index rows that match every given filter, as products.

    A target is a 4-digit code (matches the last part of the observation id) or a full id.
    The latitude filter keeps a product whose footprint (MINIMUM/MAXIMUM_LATITUDE) meets the
    range. ``kinds`` (RED/COLOR) match the product id's suffix.
    """
    size_cols = ("FILE_SIZE", "FILE_BYTES", "PRODUCT_SIZE")
    out = []
    for r in rows:
        path = str(r.get("FILE_NAME_SPECIFICATION", ""))
        obs = str(r.get("OBSERVATION_ID", ""))
        pid = str(r.get("PRODUCT_ID", ""))
        if not path or not obs or not pid:
            raise MarsError("index lacks FILE_NAME_SPECIFICATION, OBSERVATION_ID or PRODUCT_ID")
        kind = pid.rsplit("_", 1)[-1]
        orbit = r.get("ORBIT_NUMBER")
        lmin, lmax = r.get("MINIMUM_LATITUDE"), r.get("MAXIMUM_LATITUDE")
        if kinds and kind not in kinds:
            continue
        if orbits and (orbit is None or not orbits[0] <= orbit <= orbits[1]):
            continue
        if targets and not any(obs == t or obs.endswith("_" + t) for t in targets):
            continue
        if lat and (lmin is None or lmax is None or lmax < lat[0] or lmin > lat[1]):
            continue
        size = next((int(r[c]) for c in size_cols if r.get(c) not in (None, "")), None)
        out.append(Product(obs, kind, path, orbit, lmin, lmax, size))
    return out
