import pytest
import torch

from sftscope.errors import IncompatiblePairError, SftscopeError, UnknownNameError
from sftscope.models.architectures import arch_for
from sftscope.config import LoadConfig
from sftscope.models.loading import ModelRef, check_pair, load_model
from tests.conftest import save_tiny


def test_refs_parse():
    assert ModelRef.parse("org/m@abc", "sft") == ModelRef("sft", "org/m", "abc")
    assert ModelRef.parse("dpo=org/m", "x") == ModelRef("dpo", "org/m", None)
    with pytest.raises(SftscopeError):
        ModelRef.parse("=org/m", "x")


@pytest.mark.integration
def test_load_records_metadata_and_cpu_float32(tiny_pair_dir):
    base, _ = tiny_pair_dir("qwen2")
    loaded = load_model(ModelRef("base", str(base)))
    assert loaded.record["dtype"] == "float32" and loaded.record["model_type"] == "qwen2"
    assert loaded.record["num_parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert loaded.parts.num_layers == 4


@pytest.mark.integration
def test_explicit_dtype(tiny_pair_dir):
    base, _ = tiny_pair_dir("llama")
    loaded = load_model(ModelRef("base", str(base)), LoadConfig(dtype="bf16", device="cpu"))
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_missing_path_and_non_model_dir(tmp_path):
    with pytest.raises(SftscopeError, match="does not exist"):
        load_model(ModelRef("base", str(tmp_path / "nope")))
    with pytest.raises(SftscopeError, match="no config.json"):
        load_model(ModelRef("base", str(tmp_path)))


def test_unknown_hub_id_is_clean_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SftscopeError, match="cannot load the config of 'no-such-org/no-such-model'"):
        load_model(ModelRef("base", "no-such-org/no-such-model"))


@pytest.mark.integration
def test_mismatched_architecture_and_depth(tmp_path, tiny_pair_dir):
    llama, _ = tiny_pair_dir("llama")
    qwen, _ = tiny_pair_dir("qwen2")
    with pytest.raises(IncompatiblePairError, match="architecture llama vs qwen2"):
        check_pair([ModelRef("base", str(llama)), ModelRef("sft", str(qwen))])


@pytest.mark.integration
def test_mismatched_tokenizer(tmp_path, tiny_pair_dir):
    from tests.conftest import make_tokenizer
    base, _ = tiny_pair_dir("llama")
    other = save_tiny("llama", tmp_path / "other")
    tok = make_tokenizer()
    tok._tokenizer.post_processor = None  # no BOS: different ids on the probe text
    tok.save_pretrained(other)
    with pytest.raises(IncompatiblePairError, match="tokenize the probe text differently"):
        check_pair([ModelRef("base", str(base)), ModelRef("sft", str(other))])


def test_unknown_architecture_says_how_to_add():
    with pytest.raises(UnknownNameError, match="register_architecture"):
        arch_for("mamba9000")
