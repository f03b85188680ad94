"""Acquisition times of change detection's dates, as numbers a model can use.

A time is a float: days since J2000 (2000-01-01T12:00 UTC), NaN when unknown. One scalar
per date keeps batches plain tensors ([B,T]) and works for Earth and Mars alike; a model
that wants the Martian season derives it from this number itself. No torch here: the CLI
parses ``--time`` before anything heavy is imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone

from mars_core.errors import MarsError

J2000 = datetime(2000, 1, 1, 12, 0, tzinfo=timezone.utc)
UNKNOWN = float("nan")

#: Tags searched (case-insensitively, in this order) for a scene's acquisition time. The
#: TIFF DateTime tag is last: by the TIFF standard it is when the file was written, which
#: is the acquisition time only for files written by the acquiring instrument's pipeline.
TIME_TAGS = (
    "ACQUISITION_TIME", "ACQUISITION_DATE", "ACQUISITION_START_TIME", "START_TIME", "IMAGE_TIME",
    "DATE_ACQUIRED", "DATETIME_ORIGINAL", "TIFFTAG_DATETIME",
)


def days_since_j2000(when: datetime) -> float:
    """``when`` (naive means UTC) as days since J2000."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - J2000).total_seconds() / 86400.0


def parse_time(text: str, what: str = "time") -> float:
    """ISO 8601 date or date-time (``2021-05-03``, ``2021-05-03T10:20:00Z``) or the TIFF form
    ``2021:05:03 10:20:00``, as days since J2000. Raises :class:`MarsError` otherwise."""
    raw = text.strip()
    candidates = [raw, raw.replace("Z", "+00:00")]
    if len(raw) >= 19 and raw[4] == ":" and raw[7] == ":":  # TIFF DateTime "YYYY:MM:DD HH:MM:SS"
        candidates.append(f"{raw[:4]}-{raw[5:7]}-{raw[8:10]}T{raw[11:19]}")
    for c in candidates:
        try:
            return days_since_j2000(datetime.fromisoformat(c))
        except ValueError:
            continue
    raise MarsError(f"{what} '{text}' is not a date; use ISO 8601, e.g. 2021-05-03 or 2021-05-03T10:20:00Z")


def time_from_tags(tags: Mapping[str, str]) -> float:
    """The first parseable acquisition-time tag (see :data:`TIME_TAGS`), else NaN."""
    upper = {k.upper(): v for k, v in tags.items()}
    for key in TIME_TAGS:
        value = upper.get(key)
        if not value:
            continue
        try:
            return parse_time(value)
        except MarsError:
            continue
    return UNKNOWN


def is_known(t: float) -> bool:
    return not math.isnan(t)
