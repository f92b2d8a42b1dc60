"""Time helpers: RFC-2822 output in the account's UTC offset, and the list filters' input formats."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
)
_DATE_ONLY = ("%Y-%m-%d", "%d.%m.%Y")


def account_tz(utc_offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=utc_offset_minutes))


def format_time(ts: float, utc_offset_minutes: int) -> str:
    """``Mon, 05 May 2014 00:15:17 +0300`` for a unix timestamp."""
    dt = datetime.fromtimestamp(int(ts), tz=account_tz(utc_offset_minutes))
    return format_datetime(dt)


def parse_filter_time(value: str, utc_offset_minutes: int, *, upper: bool = False) -> int:
    """Parse a ``from_*``/``to_*`` filter value to a unix timestamp (whole seconds).

    Accepts an integer unix timestamp, ``YYYY-MM-DD HH:MM:SS``, ``YYYY-MM-DD`` and
    ``dd.mm.yyyy``; strings are wall-clock times in the account offset. A date-only value used as
    an upper bound (``upper=True``) covers the whole day (23:59:59). Raises ``ValueError``.
    """
    value = value.strip()
    if re.fullmatch(r"-?\d{9,12}(\.\d+)?", value):
        return int(float(value))
    tz = account_tz(utc_offset_minutes)
    for fmt in _FORMATS:
        try:
            dt = datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
        ts = int(dt.timestamp())
        if upper and fmt in _DATE_ONLY:
            ts += 86399
        return ts
    raise ValueError(f"unrecognised time {value!r}")


def seconds_until(deadline: float, now: float) -> int:
    """Whole seconds (>= 1) until ``deadline``."""
    return max(1, math.ceil(deadline - now))
