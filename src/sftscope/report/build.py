"""`sftscope report`: ONE self-contained HTML file from one or more run directories.

Reads only files (configs, environment, tables, figures), never a model. Figures are embedded as base64 data
URIs, CSS and the small sortable-table script are inline: the file opens offline and fetches nothing.
Several run directories (model sizes, variants) are overlaid on relative depth in the key-curve figure.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sftscope.errors import SftscopeError
from sftscope.report import figures as figs
from sftscope.report import findings as fnd
from sftscope.report import sections as sec
from sftscope.report.data import RunData, load_run
from sftscope.report.markup import esc, figure_html, figure_id, figure_link, page, sub_heading, tile
from sftscope.results.rundir import _atomic_write
from sftscope.results.schema import Tables


def _per_run(runs: list[RunData], section: str, render) -> tuple[str, list[str]]:
    """Concatenate render(run) over runs, with a sub-heading per run when there are several."""
    parts, subs = [], []
    for run in runs:
        content = render(run)
        if not content:
            continue
        if len(runs) > 1:
            parts.append(sub_heading(section, run.name))
            subs.append(run.name)
        parts.append(content)
    return "".join(parts), subs


def _href(finding: fnd.Finding, runs: list[RunData]) -> str:
    """The id of the figure a finding comes from, when the run has it (a file or a figure the report draws)."""
    run = next((r for r in runs if r.name == finding.run), None)
    if run is None or not finding.figure:
        return ""
    drawn = {fnd.SWEEP_CHART: run.table(Tables.SWEEP_SUMMARY) is not None,
             fnd.SUGGESTION_PROFILES: bool(run.suggestion) and run.table(Tables.SUGGEST) is not None}
    have = drawn.get(finding.figure, finding.figure in {p.stem for p in run.figures})
    return figure_id(run.name, finding.figure) if have else ""


def _findings_list(findings: list[fnd.Finding], runs: list[RunData]) -> str:
    multi = len(runs) > 1
    items = [f"<li><b>{esc(f.key)}: {esc(f.value)}</b>" + (f" <span class='pill'>{esc(f.run)}</span>" if multi else "")
             + (f" <span class='pill'>{esc(f.kind)}</span>" if f.kind else "")
             + f"<span class='d'>{esc(f.detail)}</span>"
             + (f"<span class='ev'>evidence: {esc(f.evidence)}{figure_link(_href(f, runs))}</span>"
                if f.evidence or _href(f, runs) else "") + "</li>" for f in findings]
    return f'<ul class="findings">{"".join(items)}</ul>' if items else "<p>No table to draw findings from.</p>"


def _collect_findings(runs: list[RunData]) -> tuple[list[fnd.Finding], dict[str, dict]]:
    findings, comparisons = [], {}
    for run in runs:
        for table, make in ((Tables.METRICS, fnd.cka_findings), (Tables.PROBE, fnd.lens_findings),
                            (Tables.WEIGHTS, fnd.weight_findings), (Tables.SWAP, fnd.swap_findings),
                            (Tables.CORRELATION, fnd.correlation_findings),
                            (Tables.SWEEP_SUMMARY, fnd.sweep_findings)):
            if run.table(table) is not None:
                found = make(run.table(table))
                # the directory's name, not the table's run column (a copied directory keeps its old name there)
                for f in found:
                    f.run = run.name
                findings += found
        if run.suggestion:
            found, comparisons[run.name] = fnd.suggestion_findings(
                run.suggestion, run.table(Tables.SWEEP_SUMMARY), run.name, run.table(Tables.TUNE_EVAL),
                run.table(Tables.TUNE_ITEMS))
            findings += found
    return findings, comparisons


def _tiles(findings: list[fnd.Finding], runs: list[RunData]) -> str:
    """The summary card's tiles (value, evidence, link to the figure), one group per run directory when there
    are several."""
    def tiles(found):
        return '<div class="tiles">' + "".join(tile(f.key, f.value, f.evidence, _href(f, runs), f.kind)
                                               for f in found) + "</div>"
    if len(runs) == 1:
        return tiles(findings)
    return "".join(f"<h4>{esc(r.name)}</h4>" + tiles([f for f in findings if f.run == r.name])
                   for r in runs if any(f.run == r.name for f in findings))


def build_report(runs: list[RunData]) -> str:
    """The report's HTML text for loaded runs."""
    multi = len(runs) > 1
    findings, comparisons = _collect_findings(runs)
    warn = [w for run in runs for t in run.tables.values() if "mode" in t.columns
            for w in fnd.warnings(t.assign(run=run.name))]
    key = figs.key_curves(runs)
    summary = (f'<p class="lead">{esc(_subtitle(runs))}</p>' + _tiles(findings, runs)
               + (figure_html(key, "Key curves over relative depth" + (", every run overlaid" if multi else "")
                              + ": Base-vs-variant CKA, logit-lens accuracy (Base dashed) and relative attention "
                              "weight change; averaged over data sets.") if key else "")
               + (f'<p>{len(warn)} warning(s): see <a href="#warnings">Warnings</a>.</p>' if warn else
                  '<p class="ok">No warnings: no truncated, skipped or non-finite samples recorded.</p>'))
    sections = [("Summary", summary, []), ("What was compared", sec.compared(runs), [r.name for r in runs] if multi else []),
                ("Findings", _HOW_DECIDED + _findings_list(findings, runs), [])]
    figures = {run.name: sec.Figures(run) for run in runs}
    for title, render in (("Representations", lambda r: sec.representations(r, figures[r.name])),
                          ("Logit lens", lambda r: sec.probe(r, figures[r.name])),
                          ("Weight change", lambda r: sec.weights(r, figures[r.name])),
                          ("Correlation", lambda r: sec.correlation(r, figures[r.name])),
                          ("Layer swapping", lambda r: sec.swap(r, figures[r.name])),
                          ("Tuning sweep", lambda r: sec.sweep(r, figures[r.name])),
                          ("Block suggestion", lambda r: sec.suggestion(r, comparisons.get(r.name))),
                          ("Task scores", sec.tasks),
                          ("Other figures", lambda r: sec.figures_html(figures[r.name].take(""), r.name))):
        content, subs = _per_run(runs, title, render)
        if content:
            sections.append((title, content, subs))
    warn_html = ('<ul class="findings warnings">' + "".join(f"<li>{esc(w)}</li>" for w in warn) + "</ul>") if warn \
        else '<p class="ok">None recorded.</p>'
    sections.append(("Warnings", warn_html, []))
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return page("sftscope report", "Where in depth did fine-tuning change the model?",
                f"{', '.join(r.name for r in runs)} | written {now}", sections)


def _short_id(model_id: str) -> str:
    """Hub ids as they are; a local directory as its last two path parts (the full path is in the details)."""
    path = Path(model_id)
    return "/".join(path.parts[-2:]) if path.is_absolute() else model_id


_HOW_DECIDED = ("<p class='lead'>Each claim is decided from the tables' intervals (sftscope.stats.claims): 'no "
                "change' where the interval lies within the stated margin; a drop, emergence or 'better' where it "
                "excludes 0; otherwise 'inconclusive' with the reason. The evidence gives the size, its 95% "
                "interval and what it rests on; the link opens the figure the claim can be checked on.</p>")


def _subtitle(runs: list[RunData]) -> str:
    parts = []
    for run in runs:
        models = [f"{m.get('name')} = {_short_id(str(m.get('id')))}" for m in run.models()]
        parts.append((f"{run.name}: " if len(runs) > 1 else "") + (", ".join(models) or "models not recorded")
                     + (f" ({run.num_layers()} layers)" if run.num_layers() else ""))
    return "Compared " + "; ".join(parts) + "."


def write_report(run_dirs, out: str | Path | None = None) -> Path:
    """Write one self-contained HTML report of `run_dirs` (paths) to `out` (default RUN_DIR/report.html)."""
    run_dirs = [Path(p) for p in ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs)]
    if not run_dirs:
        raise SftscopeError("give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # two directories of the same name would merge in every overlay
        if names.count(run.name) > 1:
            run.name = f"{run.name}#{i + 1}"
    out = Path(out) if out else run_dirs[0] / "report.html"
    text = build_report(runs)
    _atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out

