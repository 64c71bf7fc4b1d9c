"""The job tree: jobs -> machines -> restore points, with state in words and colour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from console import format as fmt
from console.backend import JobEntry, MachineInfo
from console.run_session import JobState

STATE_CLASSES = {"Idle": "idle", "Running": "running", "On hold": "held", "Disabled": "disabled"}
STATUS_CLASSES = {"Success": "ok", "Warning": "warn", "Failed": "failed"}


@dataclass(frozen=True)
class NodeRef:
    """What a tree node stands for."""

    kind: str  # job | machine | point | note
    job_key: str
    machine: str = ""
    point_id: str = ""


class JobTree(Tree[NodeRef]):
    """Tree of jobs; machines are filled in when a job is expanded (`set_machines`)."""

    DEFAULT_CSS = """
    JobTree {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    JobTree > .job-tree--idle { color: $text-muted; }
    JobTree > .job-tree--running { color: $success; text-style: bold; }
    JobTree > .job-tree--held { color: $warning; text-style: bold; }
    JobTree > .job-tree--disabled { color: $text-disabled; }
    JobTree > .job-tree--ok { color: $success; }
    JobTree > .job-tree--warn { color: $warning; }
    JobTree > .job-tree--failed { color: $error; text-style: bold; }
    JobTree > .job-tree--invalid { color: $error; }
    JobTree > .job-tree--dim { color: $text-muted; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "job-tree--idle", "job-tree--running", "job-tree--held", "job-tree--disabled",
        "job-tree--ok", "job-tree--warn", "job-tree--failed", "job-tree--invalid",
        "job-tree--dim",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="tree.down"),
        Binding("k", "cursor_up", "Up", show=False, id="tree.up"),
        Binding("g", "first", "First", show=False, id="tree.first"),
        Binding("G", "last", "Last", show=False, id="tree.last"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Jobs", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._jobs: dict[str, TreeNode[NodeRef]] = {}
        self._entries: dict[str, JobEntry] = {}
        self._states: dict[str, JobState] = {}
        self._statuses: dict[str, str] = {}
        self._machines: dict[str, list[MachineInfo]] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.relabel())

    # ---- actions -----------------------------------------------------------------------------
    def action_first(self) -> None:
        self.cursor_line = 0

    def action_last(self) -> None:
        self.cursor_line = max(0, self.last_line)

    # ---- content -----------------------------------------------------------------------------
    def set_jobs(self, entries: list[JobEntry]) -> None:
        """(Re)build the job level, keeping expanded jobs, loaded machines and the cursor."""
        self._entries = {e.key: e for e in entries}
        self._rebuild()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self._rebuild()

    def set_machines(self, job_key: str, machines: list[MachineInfo], error: str = "") -> None:
        self._machines[job_key] = machines
        node = self._jobs.get(job_key)
        if node is not None:
            self._fill_machines(node, job_key, error)

    def machines_of(self, job_key: str) -> list[MachineInfo] | None:
        return self._machines.get(job_key)

    def set_state(self, job_key: str, state: JobState, status: str | None = None) -> None:
        self._states[job_key] = state
        if status is not None:
            self._statuses[job_key] = status
        node = self._jobs.get(job_key)
        if node is not None and job_key in self._entries:
            node.set_label(self._job_label(self._entries[job_key]))

    def set_statuses(self, statuses: dict[str, str]) -> None:
        self._statuses.update(statuses)
        self.relabel()

    def relabel(self) -> None:
        for key, node in self._jobs.items():
            if key in self._entries:
                node.set_label(self._job_label(self._entries[key]))

    def selected(self) -> NodeRef | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def select_job(self, job_key: str) -> None:
        node = self._jobs.get(job_key)
        if node is not None:
            self.move_cursor(node)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    # ---- building ----------------------------------------------------------------------------
    def _matches(self, entry: JobEntry) -> bool:
        if not self.filter_text:
            return True
        if self.filter_text in entry.name.lower():
            return True
        return any(self.filter_text in m.name.lower() for m in self._machines.get(entry.key, []))

    def _rebuild(self) -> None:
        cursor = self.selected()
        expanded = {k for k, n in self._jobs.items() if n.is_expanded}
        self.clear()
        self._jobs = {}
        for entry in sorted(self._entries.values(), key=lambda e: e.name.lower()):
            if not self._matches(entry):
                continue
            node = self.root.add(self._job_label(entry), data=NodeRef("job", entry.key),
                                 expand=False, allow_expand=entry.spec is not None)
            self._jobs[entry.key] = node
            if entry.key in self._machines:
                self._fill_machines(node, entry.key, "")
            if entry.key in expanded or (self.filter_text and entry.key in self._machines):
                node.expand()
        if cursor is not None:
            self._restore_cursor(cursor)

    def _restore_cursor(self, ref: NodeRef) -> None:
        job = self._jobs.get(ref.job_key)
        if job is None:
            return
        target = job
        if ref.kind in ("machine", "point") and job.is_expanded:
            for child in job.children:
                if child.data is not None and child.data.machine == ref.machine:
                    target = child
                    break
        self.call_after_refresh(self.move_cursor, target)

    def _job_label(self, entry: JobEntry) -> Text:
        if entry.spec is None:
            return Text.assemble(
                (entry.name, ""), ("  invalid", self._style("job-tree--invalid")))
        state = self._states.get(entry.key, JobState("Disabled" if not getattr(
            entry.spec, "enabled", True) else "Idle"))
        status = self._statuses.get(entry.key, "")
        state_style = self._style(f"job-tree--{STATE_CLASSES.get(state.state, 'idle')}")
        label = Text.assemble((entry.name, "bold"), "  ", (state.label, state_style))
        if status:
            label.append(" · ")
            label.append(status, self._style(f"job-tree--{STATUS_CLASSES.get(status, 'dim')}"))
        return label

    def _fill_machines(self, node: TreeNode[NodeRef], job_key: str, error: str) -> None:
        node.remove_children()
        dim = self._style("job-tree--dim")
        if error:
            node.add_leaf(Text(error, style=self._style("job-tree--invalid")),
                          data=NodeRef("note", job_key))
            return
        machines = self._machines.get(job_key, [])
        if not machines:
            node.add_leaf(Text("no machines yet", style=dim), data=NodeRef("note", job_key))
            return
        for info in machines:
            if self.filter_text and self.filter_text not in info.name.lower() and \
                    self.filter_text not in self._entries[job_key].name.lower():
                continue
            points = info.target_points
            label = Text.assemble((info.name, ""), (f"  {len(points)} points", dim))
            child = node.add(label, data=NodeRef("machine", job_key, info.name), expand=False,
                             allow_expand=bool(points))
            for point in reversed(points):
                child.add_leaf(point_label(point, dim),
                               data=NodeRef("point", job_key, info.name, point.id))


def point_label(point: Any, dim: Any = "") -> Text:
    """`2026-11-25 22:00  full  1.2 GiB  W M`."""
    kind = getattr(point.kind, "value", str(point.kind))
    flags = " ".join(point.gfs)
    text = Text.assemble(fmt.when(point.time), "  ", (f"{kind:<11}", dim), fmt.size(point.size))
    if flags:
        text.append(f"  {flags}")
    return text
