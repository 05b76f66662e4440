"""Review 4 of the training support code: config loading and `--set`, `steel plot`, `steel model check-causal`'s
flags, the MFU peak table and the run log's code version. Each test failed before its fix."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch

from steel import runlog
from steel.cli import main
from steel.config import ConfigError, from_dict, load_config, read_yaml
from steel.train.config import TrainConfig
from steel.train.metrics import peak_flops


def test_set_below_a_scalar_default_names_the_field():
    """With `model.config` left at its default ('tiny'), `--set model.config.hidden_size=256` built the mapping
    {hidden_size: 256}: the model class's defaults (18 layers, vocab 151936), not tiny with a new width. The
    same override with `config: tiny` written in the YAML was already refused."""
    with pytest.raises(ConfigError, match=r"^model\.config: 'tiny' \(its default\) is a str.*; a preset's fields "
                                          r"are set with model\.overrides\.FIELD=VALUE$"):
        from_dict(TrainConfig, {}, ["model.config.hidden_size=256"])
    with pytest.raises(ConfigError, match=r"^optim\.lr: 0\.0003 \(its default\) is a float"):
        from_dict(TrainConfig, {"optim": {"warmup_steps": 3}}, ["optim.lr.x=1"])
    # Sections, dicts and lists below a missing key still build from their defaults.
    cfg = from_dict(TrainConfig, {}, ["optim.lr=0.01", "model.overrides.hidden_size=256", "optim.betas.1=0.99"])
    assert (cfg.optim.lr, cfg.model.overrides, cfg.optim.betas) == (0.01, {"hidden_size": 256}, [0.9, 0.99])
    assert cfg.model.config == "tiny"


def test_yaml_duplicate_key_is_an_error_naming_the_line(tmp_path):
    """PyYAML keeps the last of two equal keys: the second `optim:` section replaced the first, and the run
    trained at the default lr 3e-4 instead of the 1e-3 written in the file."""
    path = tmp_path / "dup.yaml"
    path.write_text("optim:\n  lr: 1.0e-3\nmax_steps: 5\noptim:\n  warmup_steps: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, path)
    assert str(e.value) == f"{path}: invalid YAML: line 4, column 1: duplicate key 'optim' (first at line 1)"
    path.write_text("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3, column 3: duplicate key 'lr' \(first at line 2\)"):
        read_yaml(path)


def test_yaml_merge_key_may_still_be_overridden(tmp_path):
    """A merge (`<<: *base`) followed by one of its keys is YAML's override, not a duplicate."""
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {lr: 1.0, eps: 2.0}\noptim:\n  <<: *b\n  lr: 3.0\n", encoding="utf-8")
    assert read_yaml(path)["optim"] == {"lr": 3.0, "eps": 2.0}


def test_yaml_syntax_error_is_one_line_with_the_line_number(tmp_path, capsys):
    """PyYAML's message spans three lines and names the text '<unicode string>', not the file."""
    path = tmp_path / "bad.yaml"
    path.write_text("max_steps: 10\noptim:\n  lr: 1\n   min_lr: 2\n", encoding="utf-8")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"steel: error: {path}: invalid YAML: line 4, column 10: mapping values are not allowed here\n"


def test_config_not_in_utf8_is_a_config_error(tmp_path, capsys):
    """A config saved as GBK (Chinese comments, a Windows editor's default) was a UnicodeDecodeError traceback."""
    path = tmp_path / "gbk.yaml"
    path.write_bytes("# 中文注释\nmax_steps: 10\n".encode("gbk"))
    assert main(["train", str(path)]) == 2
    assert capsys.readouterr().err == f"steel: error: {path}: not UTF-8 text (byte 2); save it as UTF-8\n"


@pytest.mark.parametrize("flags, message", [
    (["--positions", "-3"], "--positions must be >= 0 (got -3)"),  # was ValueError: max() arg is an empty sequence
    (["--batch", "0"], "--batch must be >= 1 (got 0)"),  # was RuntimeError: cannot reshape tensor of 0 elements
    (["--rtol", "-1"], "--rtol must be >= 0 (got -1.0)"),  # was: every model 'LEAKS the future'
])
def test_check_causal_refuses_bad_flags(flags, message, capsys):
    assert main(["model", "check-causal", "tiny", *flags]) == 2
    assert capsys.readouterr().err == f"steel: error: {message}\n"


def test_check_causal_init_std_zero_is_used(capsys):
    """`--init-std 0` was dropped as falsy: the probe ran at the config's initializer_range 0.02."""
    # (exit 1: tiny is soft_moe_v3, which leaks)
    assert main(["model", "check-causal", "tiny", "--init-std", "0", "--seq-len", "4", "--positions", "1"]) in (0, 1)
    assert "random init (initializer_range=0.0), seq_len 4" in capsys.readouterr().out


def test_plot_out_without_a_suffix_prints_the_file_written(tmp_path, capsys):
    """matplotlib writes `--out curves` to curves.png; the command printed 'curves', a file that does not exist."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 5.0 - s, "lr": 1e-3 * s}) + "\n" for s in (1, 2, 3)), encoding="utf-8")
    assert main(["plot", str(run), "--out", str(tmp_path / "curves")]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "curves").exists()


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H200 NVL", 835e12),  # data sheet: 1,671 TFLOPS bf16 with sparsity; matched "H200" (989.4e12)
    ("NVIDIA H800 PCIe", 756e12),  # 1,513 with sparsity, as H100 PCIe; matched "H800" (989.4e12)
    ("NVIDIA H100 80GB HBM3", 989.4e12),  # SXM rows unchanged
    ("NVIDIA H200", 989.4e12),
    ("NVIDIA H800", 989.4e12),
    ("NVIDIA H20", 148e12),
])
def test_peak_flops_of_pcie_and_nvl_cards(name, peak, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops(torch.device("cuda")) == (peak, name)


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_run_log_git_revision_is_not_an_enclosing_repositorys(tmp_path, monkeypatch):
    """An installed (non-editable) Steel inside the user's own git repository (a virtualenv in the project dir)
    reported that repository's commit as Steel's `git` version in every run log, manifest and checkpoint."""
    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "README").write_text("user project\n")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    _git(tmp_path, "add", "README", ".gitignore")
    _git(tmp_path, "commit", "-q", "-m", "user commit")
    user_rev = _git(tmp_path, "rev-parse", "--short", "HEAD")
    installed = tmp_path / ".venv" / "lib" / "site-packages" / "steel"
    installed.mkdir(parents=True)
    (installed / "runlog.py").write_text("# an installed copy\n")
    monkeypatch.setattr(runlog, "__file__", str(installed / "runlog.py"))
    rev = runlog.git_revision()
    assert not rev.startswith(user_rev)
    assert rev == "unknown"


def test_run_log_git_revision_of_a_steel_checkout():
    """In Steel's own checkout (the editable install the tests run from) the revision is still read."""
    rev = runlog.git_revision()
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=runlog.Path(runlog.__file__).parent,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        pytest.skip("git is not available")
    if not head:
        pytest.skip("not a git checkout")
    assert re.fullmatch(re.escape(head) + r"(\+dirty)?", rev)


def test_unknown_keys_of_mixed_types_are_named(tmp_path):
    """Unknown keys where YAML made one an int (`1: a`) beside a string one: an error naming the first by its
    text (sorting int and str keys raised a TypeError traceback)."""
    p = tmp_path / "mixed.yaml"
    p.write_text("max_steps: 3\n1: a\nfoo: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mixed.yaml: 1: unknown field \(known: anneal, "):
        load_config(TrainConfig, str(p), [])
