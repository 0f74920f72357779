"""The data of a chart, in the shape the shared chart component reads
(web/templates/web/_chart.html draws it with uPlot from web/static/web/chart.js, and renders the
same numbers as a table, so every chart can be read without a canvas or a script).

    chart("opens", "Opens and clicks", points, {"Opens": [...], "Clicks": [...]})

`points` are aware datetimes (the x axis); each series has one number per point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Chart:
    id: str
    title: str
    points: list[datetime]
    series: dict[str, list[float | int]]
    # How the table shows a point: "hour" or "day".
    grain: list[str] = field(default_factory=list)

    @property
    def data(self) -> dict:
        """What chart.js reads (json_script): x as Unix seconds, one list per series."""
        return {
            "x": [int(p.timestamp()) for p in self.points],
            "series": [{"label": k, "values": list(v)} for k, v in self.series.items()],
        }

    @property
    def rows(self) -> list[dict]:
        labels = list(self.series)
        return [
            {
                "at": point,
                "grain": self.grain[i] if i < len(self.grain) else "hour",
                "values": [self.series[label][i] for label in labels],
            }
            for i, point in enumerate(self.points)
        ]


def chart(id: str, title: str, points, series: dict, grain=None) -> Chart:
    lengths = {len(values) for values in series.values()}
    if lengths and lengths != {len(points)}:
        raise ValueError("every series needs one value per point")
    return Chart(id=id, title=title, points=list(points), series=dict(series), grain=grain or [])
