"""Run directories: resolved config, environment record, tidy tables written atomically, unit-level resume.

Layout of a run directory:
    config.json            the resolved config of the stage(s) that wrote here (one key per stage)
    environment.json       package versions, git hash, device, seed, model records
    parts/<table>/<unit>.parquet   rows of one finished unit (a model x data set, a swap, a tuning cell ...)
    <table>.parquet, <table>.csv   all finished units of a table, rebuilt after every unit
    figures/*.png
A unit whose part file exists is finished: a re-run skips it (resume). A re-run whose config differs from
the recorded one is refused, so results made two ways never mix in one table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from sftscope.errors import SftscopeError
from sftscope.results.schema import CORE_COLUMNS, Row

_PACKAGES = ("sftscope", "torch", "transformers", "peft", "accelerate", "tokenizers", "numpy", "scipy", "pandas")


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    _atomic_write(Path(path), write)


def _git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(seed: int | None = None, models: list[dict] | None = None) -> dict[str, Any]:
    from sftscope.runtime import device_description

    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
        "sftscope_git": _git_hash(), "device": device_description(), "seed": seed, "models": models or [],
        "argv": sys.argv,
    }


def rows_to_frame(rows: Iterable[Row | dict], run: str = "") -> pd.DataFrame:
    records = []
    for r in rows:
        d = r.as_dict() if isinstance(r, Row) else dict(r)
        if run and not d.get("run"):
            d["run"] = run
        records.append(d)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=CORE_COLUMNS)
    ordered = [c for c in CORE_COLUMNS if c in df.columns] + [c for c in df.columns if c not in CORE_COLUMNS]
    return df[ordered]


class RunDir:
    """One output directory shared by the stages of a run (analyze, weights, probe, ...)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.resolve().name

    # -- config -------------------------------------------------------------------------------
    def bind_config(self, stage: str, config: dict[str, Any]) -> None:
        """Record `config` for `stage`; refuse if this directory already holds a different config for it."""
        self.path.mkdir(parents=True, exist_ok=True)
        cfg_path = self.path / "config.json"
        existing = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        normalized = json.loads(json.dumps(config, sort_keys=True, default=str))
        if stage in existing and existing[stage] != normalized:
            changed = sorted(k for k in set(existing[stage]) | set(normalized)
                             if existing[stage].get(k) != normalized.get(k))
            raise SftscopeError(
                f"{self.path} already holds a '{stage}' run with a different config (differs in: "
                f"{', '.join(changed)}); use a new --out directory, or the same settings to resume")
        existing[stage] = normalized
        write_json(cfg_path, existing)

    def write_environment(self, seed: int | None = None, models: list[dict] | None = None) -> None:
        env_path = self.path / "environment.json"
        record = environment_record(seed, models)
        if env_path.exists():  # keep the first model records when a later stage adds its own
            old = json.loads(env_path.read_text())
            known = {json.dumps(m, sort_keys=True) for m in old.get("models", [])}
            record["models"] = old.get("models", []) + [m for m in record["models"]
                                                        if json.dumps(m, sort_keys=True) not in known]
        write_json(env_path, record)

    # -- units and tables -----------------------------------------------------------------------
    def _part(self, table: str, unit: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in unit)
        return self.path / "parts" / table / f"{safe}.parquet"

    def is_done(self, table: str, unit: str) -> bool:
        return self._part(table, unit).exists()

    def write_unit(self, table: str, unit: str, rows: Iterable[Row | dict]) -> pd.DataFrame:
        """Store one finished unit's rows and rebuild the table files from all finished units."""
        df = rows_to_frame(rows, run=self.name)
        _atomic_write(self._part(table, unit), lambda tmp: df.to_parquet(tmp, index=False))
        return self.rebuild_table(table)

    def rebuild_table(self, table: str) -> pd.DataFrame:
        parts = sorted((self.path / "parts" / table).glob("*.parquet"))
        frames = [pd.read_parquet(p) for p in parts]
        frames = [f for f in frames if not f.empty]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CORE_COLUMNS)
        _atomic_write(self.path / f"{table}.parquet", lambda tmp: df.to_parquet(tmp, index=False))
        _atomic_write(self.path / f"{table}.csv", lambda tmp: df.to_csv(tmp, index=False))
        return df

    def read_table(self, table: str) -> pd.DataFrame:
        path = self.path / f"{table}.parquet"
        if not path.exists():
            raise SftscopeError(f"{path} not found: run the stage that writes the '{table}' table first")
        return pd.read_parquet(path)

    @property
    def figures(self) -> Path:
        p = self.path / "figures"
        p.mkdir(parents=True, exist_ok=True)
        return p
