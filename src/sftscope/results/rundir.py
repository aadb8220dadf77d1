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

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from sftscope import distributed
from sftscope.errors import SftscopeError
from sftscope.results.schema import CORE_COLUMNS, Row

_PACKAGES = ("sftscope", "torch", "transformers", "peft", "accelerate", "tokenizers", "numpy", "scipy", "pandas")


@lru_cache(maxsize=1)
def file_mode() -> int:
    """Mode of the files sftscope writes: rw for whoever the umask allows (0644 under umask 022, 0664 under 002),
    as `open()` would give; mkstemp's private 0600 would hide results from colleagues on a shared cluster."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive advisory lock on `folder` for a read-modify-write (config.json, a table rebuild): two
    processes writing into one run folder (e.g. sweep cells of a job array) never lose each other's update."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no advisory locks, the atomic renames still keep every file whole
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".sftscope.lock", os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_output_dir(path: str | Path) -> Path:
    """Make sure results can be written into `path` (before any heavy work), creating nothing.

    Raises:
        SftscopeError: `path` is an existing file, lies under a file, or its folder cannot be written.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SftscopeError(f"--out {path} is an existing file, not a folder; give a folder for the results")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise SftscopeError(f"--out {path}: {probe} is a file, not a folder")
    try:  # try what the run will do: make a folder there (os.access says yes to root on read-only mounts)
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".sftscope-write-check-"))
    except OSError as exc:
        raise SftscopeError(f"cannot write results into {path}: {exc.strerror or exc} in {probe}; choose another "
                            "--out") from exc
    return path


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
        """Record `config` for `stage`; refuse if this directory already holds a different config for it.
        With several processes every rank must bring the same config; rank 0 writes it.

        Raises:
            SftscopeError: a different config for `stage` is recorded here, config.json is unreadable, or the
                ranks of a distributed run disagree.
        """
        normalized = json.loads(json.dumps(config, sort_keys=True, default=str))
        distributed.check_same_config(stage, normalized)
        distributed.on_main(lambda: self._bind(stage, normalized))

    def _bind(self, stage: str, normalized: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        cfg_path = self.path / "config.json"
        with _locked(self.path):
            try:
                existing = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
            except (OSError, json.JSONDecodeError) as exc:
                raise SftscopeError(f"{cfg_path} cannot be read ({exc}); it records how the results there were "
                                    "made: restore it, or use a new --out directory") from exc
            if stage in existing and existing[stage] != normalized:
                changed = sorted(k for k in set(existing[stage]) | set(normalized)
                                 if existing[stage].get(k) != normalized.get(k))
                raise SftscopeError(
                    f"{self.path} already holds a '{stage}' run with a different config (differs in: "
                    f"{', '.join(changed)}); use a new --out directory, or the same settings to resume")
            existing[stage] = normalized
            write_json(cfg_path, existing)

    def write_environment(self, seed: int | None = None, models: list[dict] | None = None) -> None:
        """Record package versions, device, seed and model records (rank 0 writes; the others wait)."""
        distributed.on_main(lambda: self._write_environment(seed, models))

    def _write_environment(self, seed: int | None, models: list[dict] | None) -> None:
        env_path = self.path / "environment.json"
        record = environment_record(seed, models)
        with _locked(self.path):
            if env_path.exists():  # keep the first model records when a later stage adds its own
                try:
                    old = json.loads(env_path.read_text())
                except (OSError, json.JSONDecodeError):
                    old = {}  # a damaged record is replaced by the current one
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
        """Store one finished unit's rows and rebuild the table files from all finished units. With several
        processes the rows are rank 0's (the pipelines gather them there first); every rank gets the table."""
        def write():
            df = rows_to_frame(rows, run=self.name)
            _atomic_write(self._part(table, unit), lambda tmp: df.to_parquet(tmp, index=False))
            return self._rebuild(table)
        return distributed.on_main(write)

    def rebuild_table(self, table: str) -> pd.DataFrame:
        """Concatenate every finished unit of `table` into <table>.parquet and .csv (rank 0 writes)."""
        return distributed.on_main(lambda: self._rebuild(table))

    def _rebuild(self, table: str) -> pd.DataFrame:
        with _locked(self.path):
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
