"""`steel eval ppl`'s "longer than the model's max_position_embeddings" names where seq_len came from: the
--config file's field (configs/eval/ppl-1m.yaml says 1024), not a --seq-len the user never typed."""

from __future__ import annotations

import json

import numpy as np
from test_ppl_contamination import _data_dir
from tiny_models import SHORT_CONTEXT

from steel.cli import main as steel_main


def test_seq_len_from_the_config_file_is_named_as_its_field(tmp_path, short_llama_dir, capsys, position_log):
    d = _data_dir(tmp_path / "data", {"a": np.arange(600) % 250}, 261)
    cfg = tmp_path / "ppl.yaml"
    cfg.write_text("seq_len: 1024\nbatch_size: 2\n", encoding="utf-8")
    base = ["eval", "ppl", "--model", str(short_llama_dir), "--config", str(cfg), "--data", str(d), "--device", "cpu"]
    assert steel_main(base) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: seq_len: 1024 is longer than the model's max_position_embeddings {SHORT_CONTEXT}" in err, err
    assert f"pass --seq-len {SHORT_CONTEXT} or less" in err, err
    assert "--seq-len 1024" not in err, err
    assert position_log == []  # refused before scoring
    # A flag given overrides the file, and an error about it names the flag.
    assert steel_main(base + ["--seq-len", str(SHORT_CONTEXT + 1)]) == 2
    err = capsys.readouterr().err
    assert f"--seq-len {SHORT_CONTEXT + 1}: longer than the model's max_position_embeddings {SHORT_CONTEXT}" in err
    assert str(cfg) not in err, err
    out = tmp_path / "ppl.json"
    assert steel_main(base + ["--seq-len", "64", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["seq_len"] == 64
