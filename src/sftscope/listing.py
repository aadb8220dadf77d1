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
        return _architectures()
    if what == "metrics":
        from sftscope.metrics.registry import list_metrics
        rows = [tuple(str(v) for v in r.values()) for r in list_metrics()]
        return _table(rows, tuple(list_metrics()[0].keys()))
    if what == "tasks":
        from sftscope.evaluation.tasks import TASKS
        rows = [(t.name, t.kind, t.description) for t in TASKS.values()]
        return _table(rows, ("name", "kind", "description"))
    raise ValueError(what)


def _architectures() -> str:
    """Two tables from the architecture table: where the parts are, and what each block holds."""
    from sftscope.models.architectures import ARCHITECTURES
    from sftscope.tuning.modules import resolve_targets

    overview, inside = [], []
    for model_type, spec in ARCHITECTURES.items():
        lora = [p.path for p in spec.projections if p.lora]
        default = resolve_targets(spec.lora_targets, lora, {p.path: p for p in spec.projections}, model_type,
                                  default=spec.lora_targets)
        overview.append((model_type, spec.embed, spec.layers, spec.final_norm, spec.lm_head,
                         f"{','.join(spec.lora_targets)} -> {' '.join(default)}"))
        for p in spec.projections:
            storage = p.layout + (f", {p.fuse}" if p.fused else "") + ("" if p.lora else ", no LoRA")
            checkpoint = " ".join(f"{name}={role}" for name, role in p.checkpoint) or "same"
            inside.append((model_type, p.path, "|".join(p.roles), storage, checkpoint))
        inside += [(model_type, norm, "norm", "", "same") for norm in spec.norms]
    return (_table(overview, ("model_type", "embedding", "blocks", "final norm", "head", "default LoRA targets"))
            + "\n\nInside each block (paths below the block; roles split fused tensors in this order):\n"
            + _table(inside, ("model_type", "module/parameter", "roles", "storage", "checkpoint names")))
