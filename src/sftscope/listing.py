"""`sftscope ls`: the registries as plain-text tables."""

from __future__ import annotations


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)).rstrip() for r in [header, *rows])


def listing(what: str) -> str:
    if what == "datasets":
        from sftscope.data.registry import DATASETS
        rows = [(s.name, s.hf_id or "-", ", ".join(s.local.values()), s.description) for s in DATASETS.values()]
        return _table(rows, ("name", "hub id", "local file (under --data-dir)", "description"))
    if what == "architectures":
        from sftscope.models.architectures import ARCHITECTURES
        rows = [(k, s.embed, s.layers, s.final_norm, s.lm_head) for k, s in ARCHITECTURES.items()]
        return _table(rows, ("model_type", "embedding", "blocks", "final norm", "head"))
    if what == "metrics":
        from sftscope.metrics.registry import list_metrics
        rows = [tuple(str(v) for v in r.values()) for r in list_metrics()]
        return _table(rows, tuple(list_metrics()[0].keys()))
    if what == "tasks":
        from sftscope.evaluation.tasks import TASKS
        rows = [(t.name, t.kind, t.description) for t in TASKS.values()]
        return _table(rows, ("name", "kind", "description"))
    raise ValueError(what)
