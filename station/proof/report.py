"""What a proof shows: the matrix as it fills (a live table in a terminal, a line per run when
piped), JUnit XML (one test case per golden run and per catch) and JSON (every run)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from station.proof.cases import EXPLORE, GOLDEN, Case
from station.proof.execute import NA_PACK, CaseResult

PENDING = "…"
CELL_TEXT = 60  # characters of a problem a matrix cell shows (the summary says it whole)


def clip(text: str, width: int = CELL_TEXT) -> str:
    """``text`` in at most ``width`` characters: cut after a whole word, with an ellipsis (a
    single word longer than that is cut where it must be)."""
    if len(text) <= width:
        return text
    head = text[:width - 1]
    if not text[width - 1].isspace() and " " in head:
        head = head[:head.rindex(" ")]
    return head.rstrip(" ,;:") + "…"


def cell_text(result: CaseResult | None) -> str:
    """One matrix cell: how the run ended, and whether that proves what was declared."""
    if result is None:
        return PENDING
    case = result.case
    if not result.applicable:
        return f"n/a ({result.na or NA_PACK})"
    if result.verdict is None:  # the plan's own location is in the problem: its name is enough here
        return "✗ " + clip(result.problem.replace(f"{case.plan}:", f"{Path(case.plan).name}:"))
    where = f" at {result.at_step}" if result.at_step else ""
    if case.kind == EXPLORE:
        text = f"caught: {result.verdict}{where}" if result.caught else "let through"
        return text if result.safe else f"✗ UNSAFE, {text}"
    if result.ok:
        return "✓ PASS" if case.kind == GOLDEN else f"✓ {result.verdict}{where}"
    return f"✗ {result.verdict}{where}" + ("" if result.safe else ", UNSAFE")


class Matrix:
    """Rows: plan x case name (golden, each catch, each explored fault); columns: variants."""

    def __init__(self, cases: list[Case]) -> None:
        self.rows: dict[tuple[str, str], dict[str, Case]] = {}
        self.variants: dict[str, list[str]] = {}
        for case in cases:
            self.rows.setdefault((case.plan, case.name), {})[case.variant_label] = case
            columns = self.variants.setdefault(case.plan, [])
            if case.variant_label not in columns:
                columns.append(case.variant_label)
        self.results: dict[str, CaseResult] = {}

    def add(self, result: CaseResult) -> None:
        self.results[result.case.id] = result

    def lines(self) -> list[str]:
        """The matrix as plain text, one block per plan."""
        out: list[str] = []
        for plan, variants in self.variants.items():
            rows = [(name, cells) for (p, name), cells in self.rows.items() if p == plan]
            width = max(len(Path(plan).name), *(len(name) for name, _ in rows)) + 2
            cols = [max([len(v)] + [len(self._cell(cells.get(v))) for _, cells in rows]) + 2 for v in variants]
            out.append(f"{Path(plan).name:<{width}}" + "".join(f"{v:<{w}}" for v, w in zip(variants, cols)))
            for name, cells in rows:
                out.append((f"{name:<{width}}" + "".join(f"{self._cell(cells.get(v)):<{w}}"
                                                         for v, w in zip(variants, cols))).rstrip())
            out.append("")
        return out

    def _cell(self, case: Case | None) -> str:
        if case is None:
            return "-"
        return cell_text(self.results.get(case.id))

    def rich_tables(self):
        from rich.table import Table

        tables = []
        for plan, variants in self.variants.items():
            table = Table(title=Path(plan).name, title_justify="left", expand=False)
            table.add_column("run")
            for variant in variants:
                table.add_column(variant)
            for (p, name), cells in self.rows.items():
                if p == plan:
                    table.add_row(name, *(self._styled(cells.get(v)) for v in variants))
            tables.append(table)
        return tables

    def _styled(self, case: Case | None) -> str:
        text = self._cell(case).replace("[", r"\[")
        if text.startswith("✗"):
            return f"[bold red]{text}[/]"
        if text.startswith("✓"):
            return f"[green]{text}[/]"
        if text.startswith("let through"):
            return f"[yellow]{text}[/]"
        return text


class ProgressView:
    """Shows the matrix filling: redrawn in a terminal, one line per finished run otherwise."""

    def __init__(self, matrix: Matrix, out=None, live: bool | None = None) -> None:
        self.matrix = matrix
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.total = sum(len(cells) for cells in matrix.rows.values())
        self._live = None

    def __enter__(self) -> ProgressView:
        if self.live:
            from rich.console import Console, Group
            from rich.live import Live

            self._group = Group
            self._console = Console(file=self.out)
            # redrawn in place (cut to the screen while it fills), printed whole at the end
            self._live = Live(Group(*self.matrix.rich_tables()), console=self._console, auto_refresh=False,
                              transient=True)
            self._live.__enter__()
        return self

    def add(self, result: CaseResult) -> None:
        self.matrix.add(result)
        if self._live is not None:
            self._live.update(self._group(*self.matrix.rich_tables()), refresh=True)
            return
        mark = "ok  " if result.ok else "FAIL"
        if result.case.kind == EXPLORE and result.ok:
            mark = "    "
        detail = cell_text(result).lstrip("✓✗ ")
        if result.problem and not result.ok:
            detail += f" -- {result.problem}"
        print(f"[{len(self.matrix.results):>4}/{self.total}] {mark} {result.case.id}: {detail} "
              f"({result.wall_s:.1f} s)", file=self.out, flush=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._console.print(self._group(*self.matrix.rich_tables()))
        else:
            print("", file=self.out)
            print("\n".join(self.matrix.lines()), file=self.out, flush=True)


def write_junit(results: list[CaseResult], path: str | Path) -> None:
    """One test suite per plan x variant; one test case per golden run and per declared catch
    (explored faults are findings, not tests: they are in the JSON)."""
    root = ET.Element("testsuites", name="station test")
    suites: dict[tuple[str, str], ET.Element] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    for result in sorted(results, key=lambda r: (r.case.plan, r.case.variant_label)):
        case = result.case
        if case.kind == EXPLORE:
            continue
        key = (case.plan, case.variant_label)
        if key not in suites:
            suites[key] = ET.SubElement(root, "testsuite", name=f"{Path(case.plan).stem}[{case.variant_label}]")
            counts[key] = [0, 0]
        counts[key][0] += 1
        tc = ET.SubElement(suites[key], "testcase", classname=f"{Path(case.plan).stem}.{case.variant_label}",
                           name=case.name, time=f"{result.wall_s:.3f}")
        if not result.ok:
            counts[key][1] += 1
            failure = ET.SubElement(tc, "failure", message=result.problem or "proof failed")
            failure.text = record_line(result)
        out = ET.SubElement(tc, "system-out")
        out.text = (f"verdict {result.verdict} at {result.at or '-'}; safe: {result.safe}\n" + record_line(result))
    total = [0, 0]
    for key, suite in suites.items():
        suite.set("tests", str(counts[key][0]))
        suite.set("failures", str(counts[key][1]))
        suite.set("errors", "0")
        total[0] += counts[key][0]
        total[1] += counts[key][1]
    root.set("tests", str(total[0]))
    root.set("failures", str(total[1]))
    ET.indent(root)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def record_line(result: CaseResult) -> str:
    """Where the case's record is, or why it has none."""
    if result.run_id:
        return f"record: run {result.run_id} in {result.db} (station results --db {result.db} show {result.run_id})"
    if not result.applicable:
        return f"no record: nothing was run, the fault is not applicable ({result.na or NA_PACK})"
    return "no record: no run was recorded" + (f" ({result.problem})" if result.problem else "")


def plan_identity(plan: str, variants: list[str | None]) -> dict:
    """variant -> what identifies the proven plan wherever the proof is read: its resolved path,
    the sha256 of its bytes, and its release digest for the variant (``plan_release_sha256``:
    the plan's and every included library's sha256, as the record's ``plan.release_sha256``).
    The plan is loaded once; a digest that cannot be taken (the file gone, the plan not
    binding) is None."""
    from drivers.base.diagnostics import InputError
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    base: dict = {"plan_resolved": str(Path(plan).resolve()), "plan_sha256": None}
    try:
        loaded = load_plan(plan)
        base["plan_sha256"] = loaded.sha256
    except InputError:
        loaded = None
    out = {}
    for variant in variants:
        try:
            release = bind_plan(loaded, variant).release_sha256 if loaded is not None else None
        except InputError:
            release = None
        out[variant] = {**base, "plan_release_sha256": release}
    return out


def write_json(results: list[CaseResult], path: str | Path, meta: dict) -> None:
    """The proof as JSON: ``meta`` and one entry per run, each with its plan's identity
    (``plan_identity``), so ``station coverage --proof`` finds a plan's runs from any directory."""
    variants: dict[str, list[str | None]] = {}
    for r in results:
        variants.setdefault(r.case.plan, [])
        if r.case.variant not in variants[r.case.plan]:
            variants[r.case.plan].append(r.case.variant)
    identity = {plan: plan_identity(plan, vs) for plan, vs in variants.items()}
    doc = {**meta, "results": [{**r.as_dict(), **identity[r.case.plan][r.case.variant]}
                               for r in sorted(results, key=lambda r: r.case.id)]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
