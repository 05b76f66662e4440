"""`steel eval mc|ppl --config FILE`: the ready-made configs in configs/eval/ load and run, a config run
equals the same run spelled as flags, flags override the file, and every error names its source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_mc import SHARED, make_ceval_dir
from test_ppl_contamination import _data_dir

from steel.cli import main as steel_main
from steel.eval.cli import options
from steel.eval.mc import McOptions
from steel.eval.ppl import PplOptions

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "eval"


def _run(argv: list[str], out: Path) -> dict:
    assert steel_main(argv + ["--out", str(out), "--device", "cpu"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    result.pop("seconds", None)
    return result


def _mc(model_dir) -> list[str]:
    return ["eval", "mc", "--model", str(model_dir)]


def test_shipped_configs_load():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == ["ceval-val-5shot.yaml", "cmmlu-5shot.yaml", "cmmlu-chat-0shot.yaml", "ppl-1m.yaml"]
    cmmlu = options(McOptions, str(CONFIGS / "cmmlu-5shot.yaml"), {})
    # The data path is relative to the file and lands on the shared CMMLU copy.
    assert cmmlu.data == (SHARED / "cmmlu").resolve() and (cmmlu.data / "test").is_dir()
    assert (cmmlu.task, cmmlu.split, cmmlu.shots, cmmlu.mode, cmmlu.scoring) == (
        "cmmlu", "test", 5, "logprob", "letter"
    )
    chat = options(McOptions, str(CONFIGS / "cmmlu-chat-0shot.yaml"), {})
    assert (chat.mode, chat.shots, chat.data) == ("generate", 0, cmmlu.data)
    ceval = options(McOptions, str(CONFIGS / "ceval-val-5shot.yaml"), {"data": "ceval-exam"})
    assert (ceval.task, ceval.split, ceval.shots, ceval.data) == ("ceval", "val", 5, Path("ceval-exam"))
    ppl = options(PplOptions, str(CONFIGS / "ppl-1m.yaml"), {"data": "d"})
    assert (ppl.seq_len, ppl.max_tokens, ppl.batch_size) == (1024, 1_000_000, 4)


def test_shipped_cmmlu_config_equals_flags(tmp_path, tiny_llama_dir):
    quick = ["--subjects", "agronomy,anatomy", "--limit", "2"]
    config = ["--config", str(CONFIGS / "cmmlu-5shot.yaml")]
    a = _run(_mc(tiny_llama_dir) + config + quick, tmp_path / "a.json")
    data = str((SHARED / "cmmlu").resolve())
    flags = ["--task", "cmmlu", "--data", data, "--split", "test", "--shots", "5"]
    flags += ["--mode", "logprob", "--scoring", "letter", "--batch-size", "8"]
    b = _run(_mc(tiny_llama_dir) + flags + quick, tmp_path / "b.json")
    assert a == b and a["n_questions"] == 4 and a["shots"] == 5
    qa = (tmp_path / "a.questions.jsonl").read_text(encoding="utf-8")
    assert qa == (tmp_path / "b.questions.jsonl").read_text(encoding="utf-8")


def test_config_equals_flags_and_flags_override(tmp_path, tiny_llama_dir):
    root = make_ceval_dir(tmp_path / "bench" / "ceval")
    cfg = tmp_path / "cfgs" / "ceval.yaml"
    cfg.parent.mkdir()
    # `data` relative to the file's directory, as the shipped configs do.
    cfg.write_text(
        "task: ceval\ndata: ../bench/ceval\nsplit: val\nshots: 2\nscoring: continuation\nbatch_size: 3\n"
        "subjects: [computer_network, high_school_history]\nlimit: 4\n",
        encoding="utf-8",
    )
    a = _run(_mc(tiny_llama_dir) + ["--config", str(cfg)], tmp_path / "a.json")
    flags = ["--task", "ceval", "--data", str(root), "--split", "val", "--shots", "2"]
    flags += ["--scoring", "continuation", "--batch-size", "3"]
    flags += ["--subjects", "computer_network,high_school_history", "--limit", "4"]
    b = _run(_mc(tiny_llama_dir) + flags, tmp_path / "b.json")
    assert a == b and a["shots"] == 2 and a["scoring"] == "continuation" and a["n_questions"] == 8
    # Flags given win over the file; the rest still comes from it.
    override = ["--shots", "0", "--scoring", "letter"]
    c = _run(_mc(tiny_llama_dir) + ["--config", str(cfg)] + override, tmp_path / "c.json")
    d = _run(_mc(tiny_llama_dir) + flags[:6] + override + flags[10:], tmp_path / "d.json")
    assert c == d and c["shots"] == 0 and c["scoring"] == "letter" and c["n_questions"] == 8
    # A boolean set in the file can be turned off from the command line.
    cot = tmp_path / "cfgs" / "cot.yaml"
    # (without the logprob-only `scoring: continuation`: generate mode refuses it)
    cot.write_text(cfg.read_text(encoding="utf-8").replace("scoring: continuation\n", "") + "mode: generate\ncot: true\n",
                   encoding="utf-8")
    assert options(McOptions, str(cot), {}).cot is True
    assert options(McOptions, str(cot), {"cot": False}).cot is False


def test_ppl_config_equals_flags(tmp_path, tiny_llama_dir):
    d = _data_dir(tmp_path / "data", {"a": np.arange(100) % 250, "b": np.arange(50) % 200}, 261)
    cfg = tmp_path / "ppl.yaml"
    cfg.write_text("data: data\nseq_len: 16\nmax_tokens: 60\nbatch_size: 2\n", encoding="utf-8")
    base = ["eval", "ppl", "--model", str(tiny_llama_dir)]
    a = _run(base + ["--config", str(cfg)], tmp_path / "a.json")
    flags = ["--data", str(d), "--seq-len", "16", "--max-tokens", "60", "--batch-size", "2"]
    b = _run(base + flags, tmp_path / "b.json")
    assert a == b and a["seq_len"] == 16 and a["tokens"] == 60


@pytest.mark.parametrize(
    "body, expected",
    [
        ("task: ceval\nshot: 2\n", "{cfg}: shot: unknown field (known: batch_size, cot, data,"),
        ("task: ceval\nshots: two\n", "{cfg}: shots: expected an integer, got 'two'"),
        ("task: ceval\nshots: 7\n", "{cfg}: shots: must be in 0..5, got 7"),
        ("task: mmlu\n", "{cfg}: task: 'mmlu' is not one of ['ceval', 'cmmlu']"),
        ("- task: ceval\n", "{cfg}: top level must be a mapping"),
        ("shots: 2\n", "--task is required or set task: in {cfg}"),
    ],
)
def test_config_errors_name_field_and_file(tmp_path, tiny_llama_dir, capsys, body, expected):
    root = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body, encoding="utf-8")
    assert steel_main(_mc(tiny_llama_dir) + ["--config", str(cfg), "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steel: error: ") and expected.format(cfg=cfg) in err, err
    assert "Traceback" not in err


def test_flag_errors_blame_the_flag_not_the_file(tmp_path, tiny_llama_dir, capsys):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("task: ceval\nshots: 2\n", encoding="utf-8")
    assert steel_main(_mc(tiny_llama_dir) + ["--config", str(cfg), "--data", "x", "--shots", "7"]) == 2
    assert "steel: error: --shots: must be in 0..5, got 7" in capsys.readouterr().err
    assert steel_main(_mc(tiny_llama_dir) + ["--config", str(cfg), "--data", "x", "--batch-size", "0"]) == 2
    assert "steel: error: --batch-size: must be >= 1, got 0" in capsys.readouterr().err
    # The C-Eval config carries no data directory (C-Eval is not in shared/data): asked for by name.
    assert steel_main(_mc(tiny_llama_dir) + ["--config", str(CONFIGS / "ceval-val-5shot.yaml")]) == 2
    assert f"--data is required or set data: in {CONFIGS / 'ceval-val-5shot.yaml'}" in capsys.readouterr().err
    # Without a config, a missing required flag says so.
    assert steel_main(_mc(tiny_llama_dir) + ["--data", "x"]) == 2
    assert "steel: error: --task is required (or set it in a --config file)" in capsys.readouterr().err
    missing = ["--config", str(tmp_path / "no.yaml")]
    assert steel_main(["eval", "ppl", "--model", str(tiny_llama_dir)] + missing) == 2
    assert f"{tmp_path / 'no.yaml'}: cannot read config" in capsys.readouterr().err
