"""The result table of an evaluation run and its CSV / JSON / Markdown renderings.

One row per metric column (``lse`` has three: ``lse_c``, ``lse_d``, ``lse_offset``):

| field   | meaning                                                                    |
|---------|----------------------------------------------------------------------------|
| metric  | registry name                                                              |
| column  | value name                                                                 |
| value   | aggregate over videos (mean, or a distribution distance for FID/FVD); empty when the metric did not run |
| better  | ``higher`` / ``lower`` / empty (not a score)                               |
| videos  | ``scored/total``                                                           |
| status  | ``ok``, ``ok (k failed)``, ``unavailable: needs <file> (...)`` or ``failed: <reason>`` |

Per-video values go to a second table (``per_video``) and every per-video failure is listed
with its reason, so nothing is silently dropped. Files written by :meth:`EvalReport.write`:
``<stem>.csv`` (summary), ``<stem>_per_video.csv``, ``<stem>.json`` (everything),
``<stem>.md`` (both tables and the failures).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["MetricResult", "EvalReport"]


@dataclass
class MetricResult:
    """Outcome of one metric over all videos."""

    metric: str
    columns: List[str]
    higher_is_better: Dict[str, Optional[bool]] = field(default_factory=dict)
    summary: Dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    scored: int = 0
    errors: List[tuple] = field(default_factory=list)  # (video, message)

    @property
    def available(self) -> bool:
        return not self.status.startswith(("unavailable", "failed"))


def _num(v) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _fmt(v, digits: int = 4) -> str:
    v = _num(v)
    if v is None:
        return "–"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


@dataclass
class EvalReport:
    """All results of a run: per-metric summaries and per-video values."""

    results: List[MetricResult]
    videos: List[str]
    per_video: Dict[str, Dict[str, float]] = field(default_factory=dict)
    info: Dict[str, object] = field(default_factory=dict)

    def summary_rows(self) -> List[dict]:
        rows = []
        for res in self.results:
            status = res.status
            if res.available and res.errors:
                status = f"ok ({len(res.errors)} failed)"
            for col in res.columns:
                hib = res.higher_is_better.get(col)
                rows.append({"metric": res.metric, "column": col, "value": _num(res.summary.get(col)),
                             "better": "" if hib is None else ("higher" if hib else "lower"),
                             "videos": f"{res.scored}/{len(self.videos)}", "status": status})
        return rows

    def value(self, column: str) -> Optional[float]:
        """Summary value of a column (None if absent or not computed)."""
        for row in self.summary_rows():
            if row["column"] == column:
                return row["value"]
        return None

    def status(self, metric: str) -> str:
        return next(r.status for r in self.results if r.metric == metric)

    def columns(self) -> List[str]:
        return [c for r in self.results for c in r.columns]

    def errors(self) -> List[dict]:
        return [{"metric": r.metric, "video": v, "error": msg} for r in self.results for v, msg in r.errors]

    def to_dict(self) -> dict:
        return {
            "summary": self.summary_rows(),
            "per_video": [{"video": v, **{c: _num(self.per_video.get(v, {}).get(c)) for c in self.columns()}}
                          for v in self.videos],
            "errors": self.errors(),
            "info": self.info,
        }

    def to_markdown(self) -> str:
        lines = ["| metric | column | value | better | videos | status |", "|---|---|---|---|---|---|"]
        for r in self.summary_rows():
            lines.append(f"| {r['metric']} | {r['column']} | {_fmt(r['value'])} | {r['better']} | {r['videos']} | "
                         f"{r['status']} |")
        cols = self.columns()
        if self.videos and cols:
            lines += ["", "| video | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
            for v in self.videos:
                vals = self.per_video.get(v, {})
                lines.append(f"| {v} | " + " | ".join(_fmt(vals.get(c)) for c in cols) + " |")
        errs = self.errors()
        if errs:
            lines += ["", "Failures:", ""] + [f"- {e['metric']} / {e['video']}: {e['error']}" for e in errs]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, stem: str = "results") -> Dict[str, Path]:
        """Write the CSV / JSON / Markdown files; returns {kind: path}."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"csv": out / f"{stem}.csv", "per_video_csv": out / f"{stem}_per_video.csv",
                 "json": out / f"{stem}.json", "markdown": out / f"{stem}.md"}
        rows = self.summary_rows()
        with open(paths["csv"], "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["metric", "column", "value", "better", "videos", "status"])
            writer.writeheader()
            writer.writerows({**r, "value": "" if r["value"] is None else repr(r["value"])} for r in rows)
        with open(paths["per_video_csv"], "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["video", *self.columns()])
            for v in self.videos:
                vals = self.per_video.get(v, {})
                writer.writerow([v, *("" if _num(vals.get(c)) is None else repr(float(vals[c])) for c in self.columns())])
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1, default=str, allow_nan=True))
        paths["markdown"].write_text(self.to_markdown())
        return paths
