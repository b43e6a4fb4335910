"""ShipStation v1 speaks US Pacific local time with no offset, in both answers and filters.

Reading one as UTC is 7-8 hours off; these two functions are the only place that converts.
For the hour that repeats when DST ends, the first (daylight) reading is taken.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
_STAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?$")


def pacific_to_utc(text: str) -> datetime:
    """`2015-06-29T08:46:27.0000000` (Pacific) -> an aware UTC datetime."""
    m = _STAMP.match(text.strip())
    if not m:
        raise ValueError(f"not a ShipStation timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    local = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                     int(second or 0), micro, tzinfo=PACIFIC, fold=0)
    return local.astimezone(UTC)


def utc_to_pacific(moment: datetime) -> str:
    """An aware datetime -> the `yyyy-mm-dd hh:mm:ss` Pacific form ShipStation filters read."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: say which time zone it is in")
    return moment.astimezone(PACIFIC).strftime("%Y-%m-%d %H:%M:%S")


def pacific_stamp(moment: datetime) -> str:
    """An aware datetime -> ShipStation's answer form, `2015-06-29T08:46:27.0000000`."""
    return moment.astimezone(PACIFIC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"
