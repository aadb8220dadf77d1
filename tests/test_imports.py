"""Import hygiene: the report layer loads no deep-learning stack, and importing any sftscope module changes no
process-wide state (matplotlib backend, warning filters, environment, logging, torch settings, random states).

Each check runs in a fresh interpreter: this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

HEAVY = ("torch", "transformers", "peft", "accelerate")


def _python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_report_layer_imports_no_deep_learning_stack():
    """The report, its figures and what they read (results, the claims, suggest.compare, tuning.blocks and the
    sweep statistics) stay light."""
    found = _python(f"""
        import importlib, json, pkgutil, sys
        import sftscope.report, sftscope.report.plots
        names = [m.name for m in pkgutil.walk_packages(sftscope.report.__path__, "sftscope.report.")]
        names += ["sftscope.results", "sftscope.results.schema", "sftscope.results.rundir", "sftscope.suggest",
                  "sftscope.suggest.compare", "sftscope.suggest.decide", "sftscope.tuning.blocks", "sftscope.stats",
                  "sftscope.stats.claims", "sftscope.stats.scores", "sftscope.tuning.summary"]
        for name in names:
            importlib.import_module(name)
        # the lazily re-exported names resolve without loading the heavy stack
        for package in (sftscope.report, sftscope.report.plots):
            for name in package.__all__:
                getattr(package, name)
        print(json.dumps({{"modules": names, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert "sftscope.report.build" in found["modules"] and "sftscope.report.plots.sweep" in found["modules"]
    assert found["heavy"] == []


STATE = """
    def state():
        import logging, os, random, warnings
        import matplotlib, numpy, torch
        return {"backend": matplotlib.get_backend(), "filters": [repr(f) for f in warnings.filters],
                "environ": dict(os.environ), "logging": [logging.root.level, repr(logging.root.handlers)],
                "threads": [torch.get_num_threads(), torch.get_num_interop_threads()],
                "torch": [str(torch.get_default_dtype()), torch.are_deterministic_algorithms_enabled(),
                          torch.is_grad_enabled(), torch.random.get_rng_state().sum().item()],
                "random": [repr(random.getstate()[1][:8]), repr(numpy.random.get_state()[1][:8].tolist())]}
"""


@pytest.mark.integration
def test_importing_every_module_changes_no_global_state():
    """A notebook user with an inline backend keeps it, and their warning filters, after importing sftscope."""
    result = _python(STATE + """
    import importlib, json, pkgutil
    import matplotlib
    matplotlib.use("svg")  # any backend but Agg: an import that switches to Agg shows
    # third-party packages change filters and environment on their own import (scipy, torch): load them first
    import accelerate, pandas, peft, scipy.stats, torch, transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
    import sftscope
    changed, before = {}, state()
    for module in pkgutil.walk_packages(sftscope.__path__, "sftscope."):
        importlib.import_module(module.name)
        after = state()
        diff = [k for k in before if before[k] != after[k]]
        if diff:
            changed[module.name] = diff
            before = after
    print(json.dumps({"changed": changed, "backend": matplotlib.get_backend(), "n": len(list(
        pkgutil.walk_packages(sftscope.__path__, "sftscope.")))}))
    """)
    assert result["n"] > 80  # every module was imported, the CLI and the training loop among them
    assert result["changed"] == {}
    assert result["backend"] == "svg"


@pytest.mark.integration
def test_attach_lora_scopes_its_warning_filter():
    """PEFT's FutureWarning about transformers' deprecated attribute is silenced inside attach_lora only."""
    from sftscope.tuning.adapters import attach_lora
    from sftscope.tuning.blocks import parse_block_spec
    from sftscope.tuning.budget import match_budget
    from tests.conftest import build_tiny

    model = build_tiny("llama")
    plan = match_budget(model, parse_block_spec("0110", 4), rank=4)
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attach_lora(model, plan, seed=0)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    assert warnings.filters == filters


def test_lazy_exports_import_a_submodule_on_first_use_only(tmp_path, monkeypatch):
    package = tmp_path / "lazy_demo_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from sftscope._lazy import lazy_exports\n"
                                         "__getattr__, __dir__, __all__ = lazy_exports(__name__, {'heavy': ('VALUE',)})\n")
    (package / "heavy.py").write_text("VALUE = 42\n")
    (package / "other.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import lazy_demo_pkg

        assert "lazy_demo_pkg.heavy" not in sys.modules
        assert lazy_demo_pkg.__all__ == ["VALUE"] and "VALUE" in dir(lazy_demo_pkg)
        from lazy_demo_pkg import VALUE
        assert VALUE == 42 and "lazy_demo_pkg.heavy" in sys.modules
        assert vars(lazy_demo_pkg)["VALUE"] == 42  # cached: later look-ups are plain attribute reads
        from lazy_demo_pkg import other  # a submodule that is not re-exported still imports
        assert other.__name__ == "lazy_demo_pkg.other"
        with pytest.raises(AttributeError, match="has no attribute 'missing'"):
            lazy_demo_pkg.missing
    finally:
        for name in [m for m in sys.modules if m.startswith("lazy_demo_pkg")]:
            del sys.modules[name]


@pytest.mark.integration
def test_every_re_exported_name_resolves_to_its_object():
    """Each package's __all__ resolves (the training loop included) and no name is shadowed by a submodule."""
    import importlib
    import pkgutil
    import types

    import sftscope

    packages = [m.name for m in pkgutil.walk_packages(sftscope.__path__, "sftscope.") if m.ispkg]
    checked = 0
    for name in packages:
        package = importlib.import_module(name)
        for export in getattr(package, "__all__", []):
            value = getattr(package, export)
            assert not isinstance(value, types.ModuleType), f"{name}.{export} is a module"
            assert export in dir(package)
            checked += 1
    assert checked > 60
    from sftscope.tuning import train_cell
    from sftscope.tuning.train import train_cell as direct
    assert train_cell is direct
