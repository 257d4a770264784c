"""The queue page's chart: messages sent and failed per hour, as bars the template draws in
an inline SVG (no script, no image request)."""

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT, BAR_GAP = 720, 160, 2


@dataclass(frozen=True)
class HourlyCounts:
    start: datetime
    sent: int
    failed: int


@dataclass(frozen=True)
class Bar:
    """One hour: `sent` stacked under `failed`, in SVG user units."""

    hour: HourlyCounts
    x: float
    width: float
    sent_y: float
    sent_height: float
    failed_y: float
    failed_height: float


def hourly_bars(hours: list[HourlyCounts]) -> list[Bar]:
    top = max((h.sent + h.failed for h in hours), default=0) or 1
    slot = WIDTH / max(len(hours), 1)
    bars = []
    for index, hour in enumerate(hours):
        sent = HEIGHT * hour.sent / top
        failed = HEIGHT * hour.failed / top
        bars.append(
            Bar(
                hour=hour,
                x=round(index * slot + BAR_GAP / 2, 1),
                width=round(slot - BAR_GAP, 1),
                sent_y=round(HEIGHT - sent, 1),
                sent_height=round(sent, 1),
                failed_y=round(HEIGHT - sent - failed, 1),
                failed_height=round(failed, 1),
            )
        )
    return bars
