"""What the report reads from a run directory: configs, environment, every table and figure, the suggestion.

Only files are read, never a model; every part is optional, so a report can be written from whatever
stages have run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sftscope.errors import SftscopeError
from sftscope.results.schema import SUGGESTION_FILE


@dataclass
class RunData:
    """The readable contents of one run directory."""

    path: Path
    name: str
    config: dict = field(default_factory=dict)        # stage -> resolved config
    environment: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    suggestion: dict | None = None

    def table(self, name: str) -> pd.DataFrame | None:
        df = self.tables.get(name)
        return df if df is not None and not df.empty else None

    def models(self) -> list[dict]:
        """Model records, one per (side name, id), the richest record of each kept."""
        merged: dict[tuple, dict] = {}
        for m in self.environment.get("models", []) or []:
            key = (m.get("name"), m.get("id"))
            record = merged.setdefault(key, {})
            for k, v in m.items():
                if record.get(k) is None:
                    record[k] = v
        return list(merged.values())

    def num_layers(self) -> int | None:
        layers = [m.get("num_layers") for m in self.models() if m.get("num_layers")]
        return int(layers[0]) if layers else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _read_table(parquet: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(parquet)
    except Exception:  # noqa: BLE001  a half-written or foreign file: fall back to the CSV twin, else skip
        csv = parquet.with_suffix(".csv")
        try:
            return pd.read_csv(csv) if csv.exists() else None
        except Exception:  # noqa: BLE001
            return None


def load_run(path: str | Path) -> RunData:
    """Read everything the report can use from run directory `path`."""
    path = Path(path)
    if not path.is_dir():
        raise SftscopeError(f"{path} is not a run directory (no such folder)")
    run = RunData(path=path, name=path.resolve().name, config=_read_json(path / "config.json"),
                  environment=_read_json(path / "environment.json"))
    # A stage may write into its own sub-run (the demo's sweep/): its tables and figures belong to this run.
    for folder in [path] + sorted(p for p in path.iterdir() if p.is_dir() and (p / "config.json").exists()):
        stems = {p.stem for p in folder.glob("*.parquet")} | {p.stem for p in folder.glob("*.csv")}
        for stem in sorted(s for s in stems if not s.startswith(".") and s not in run.tables):
            df = _read_table(folder / f"{stem}.parquet")
            if df is not None:
                run.tables[stem] = df
        figures = folder / "figures"
        run.figures += sorted(figures.glob("*.png")) if figures.is_dir() else []
    if (path / SUGGESTION_FILE).exists():
        run.suggestion = _read_json(path / SUGGESTION_FILE) or None
    if not (run.tables or run.figures or run.config):
        raise SftscopeError(f"{path} holds no results (no tables, figures or config.json): run a stage into it first")
    return run
