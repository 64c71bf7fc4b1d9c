"""Output of `ferry preview`: the CONTRACT JSON shape and a compact rich timeline.

Kept apart from `engine.simulate` so the simulation stays free of presentation. Rich is
used for styles only (no Textual), so the CLI and the console can both call it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.model import Kind
from engine.simulate import PreviewDay, PreviewPoint, PreviewResult
from engine.units import fmt_size, rfc3339

# One character per day: what the day's run produced (the strongest if several runs).
_RANK = {"i": 0, "F": 1, "W": 2, "M": 3, "Y": 4}
STYLES = {"F": "blue", "i": "green", "W": "cyan", "M": "magenta", "Y": "yellow",
          "·": "bright_black"}
LEGEND = (("F", "full"), ("i", "increment"), ("W", "weekly"), ("M", "monthly"),
          ("Y", "yearly"), ("·", "no run"))


def preview_json(result: PreviewResult) -> dict[str, Any]:
    """CONTRACT's `ferry preview --json` shape, plus work_space, actions and notes."""
    seen: dict[int, dict[str, Any]] = {}  # PreviewPoints are shared between days: share their dicts

    def point(p: PreviewPoint) -> dict[str, Any]:
        d = seen.get(id(p))
        if d is None:
            d = seen[id(p)] = {"time": rfc3339(p.time), "kind": p.kind,
                               "gfs": list(p.gfs), "reason": p.reason, "size": p.size}
        return d

    return {
        "job": result.job,
        "days": [{"date": d.date.isoformat(), "points": [point(p) for p in d.points],
                  "total_size": d.total_size, "work_space": d.work_space,
                  "actions": list(d.actions)} for d in result.days],
        "worst_day": {"date": result.worst_day.date.isoformat(),
                      "total_size": result.worst_day.total_size,
                      "work_space": result.worst_day.work_space},
        "notes": list(result.notes),
        **({"immutability": result.immutability} if result.immutability is not None else {}),
    }


def immutability_line(cost: dict[str, Any]) -> str:
    """The one line of what immutability costs (`immutability_cost` of the preview)."""
    w, wo = cost["worst_day"], cost["worst_day_without"]
    extra = cost["extra_worst_day"]
    sign = "+" if extra >= 0 else "-"
    return (f"immutable_days = {cost['immutable_days']} costs {sign}{fmt_size(abs(extra))} on "
            f"the worst day: {w['points']} points, {fmt_size(w['total_size'] + w['work_space'])}"
            f" with work space, against {wo['points']} points, "
            f"{fmt_size(wo['total_size'] + wo['work_space'])} without immutability "
            f"(last day {'+' if cost['extra_last_day'] >= 0 else '-'}"
            f"{fmt_size(abs(cost['extra_last_day']))})")


def day_char(day: PreviewDay) -> str:
    """F/i/W/M/Y for what the day's runs produced, "·" for a day without a run."""
    best = "·"
    for p in day.points:
        if p.time.date() != day.date:
            continue
        c = _point_char(p)
        if best == "·" or _RANK[c] > _RANK[best]:
            best = c
    return best


def _point_char(p: PreviewPoint) -> str:
    if p.kind != Kind.FULL:
        return "i"
    for flag in ("Y", "M", "W"):
        if flag in p.gfs:
            return flag
    return "F"


def _gfs_counts(day: PreviewDay) -> str:
    counts = {f: sum(f in p.gfs for p in day.points) for f in ("W", "M", "Y")}
    return " ".join(f"{n}{f}" for f, n in counts.items())


def _rows(days: list[PreviewDay], width_days: int | None) -> list[list[PreviewDay]]:
    """Calendar months by default, else fixed rows of `width_days` days."""
    if width_days is not None:
        step = max(1, width_days)
        return [days[i:i + step] for i in range(0, len(days), step)]
    rows: list[list[PreviewDay]] = []
    for d in days:
        if rows and (rows[-1][0].date.year, rows[-1][0].date.month) == (d.date.year, d.date.month):
            rows[-1].append(d)
        else:
            rows.append([d])
    return rows


def render_preview(result: PreviewResult, console: Console, *,
                   width_days: int | None = None) -> None:
    """A compact timeline: one character per day, month rows, then the last day's points.

    Characters in bold are points still kept on the last day; dim ones were merged or
    deleted on the way. Each row ends with what the chain holds at the row's last day.
    """
    if not result.days:
        console.print(f"[bold]{result.job}[/]: nothing to preview")
        return
    first, last = result.days[0], result.days[-1]
    console.print(Text.assemble((f"Retention preview: {result.job}", "bold"),
                                f"  {first.date} .. {last.date} ({len(result.days)} days)"))
    kept = {p.time for p in last.points}
    monthly_rows = width_days is None
    for row in _rows(result.days, width_days):
        start: date = row[0].date
        line = Text()
        line.append(f"{start:%Y-%m}  " if monthly_rows else f"{start}  ", style="bold")
        if monthly_rows:
            line.append(" " * (start.day - 1))
        for d in row:
            c = day_char(d)
            made_today = [p.time for p in d.points if p.time.date() == d.date]
            still = any(t in kept for t in made_today)
            if c == "·":
                line.append(c, style=STYLES[c])
            else:
                line.append(c, style=f"{'bold' if still else 'dim'} {STYLES[c]}")
        pad = (31 if monthly_rows else max(1, width_days or 1)) - len(row) - (
            start.day - 1 if monthly_rows else 0)
        end = row[-1]
        line.append(" " * max(pad, 0) + "  ")
        line.append(f"{len(end.points):>3} pts  {_gfs_counts(end)}  {fmt_size(end.total_size)}",
                    style="dim")
        console.print(line)
    legend = Text("  ")
    for c, name in LEGEND:
        legend.append(c, style=STYLES[c] if c == "·" else f"bold {STYLES[c]}")
        legend.append(f" {name}  ")
    legend.append("(bold: still kept on the last day, dim: merged or deleted since)",
                  style="dim")
    console.print(legend)

    table = Table(title=f"Restore points on {last.date}", title_justify="left",
                  show_edge=False, pad_edge=False)
    table.add_column("time")
    table.add_column("kind")
    table.add_column("GFS")
    table.add_column("size", justify="right")
    table.add_column("kept because")
    for p in last.points:
        c = _point_char(p)
        table.add_row(p.time.strftime("%Y-%m-%d %H:%M"), Text(p.kind, style=f"bold {STYLES[c]}"),
                      " ".join(p.gfs), fmt_size(p.size), p.reason)
    console.print(table)
    for label, d in (("Last day", last), ("Worst day", result.worst_day)):
        console.print(Text.assemble(
            (f"{label:<10}", "bold"), f"{d.date}  {len(d.points)} points  ",
            (fmt_size(d.total_size), "bold"), f" + work space {fmt_size(d.work_space)} = ",
            (fmt_size(d.total_size + d.work_space), "bold")))
    if result.immutability is not None:
        console.print(Text.assemble(("Immutability ", "bold"),
                                    immutability_line(result.immutability)), soft_wrap=True)
    if last.actions:
        console.print(Text("Last day: " + "; ".join(last.actions), style="dim"))
    for note in result.notes:
        console.print(Text(f"· {note}", style="dim"))
