"""SFT data: label masking token by token, packing/padding, mixing and filters, self-cognition, resume, `steel sft`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.config import ConfigError, from_dict
from steel.sft import data as D
from steel.sft.selfcog import self_cognition

CONV = [
    {"role": "system", "content": "你是Steel。"},
    {"role": "user", "content": "1+1等于几？"},
    {"role": "assistant", "content": "等于2。"},
    {"role": "user", "content": "Why?"},
    {"role": "assistant", "content": "Because one plus one is two."},
]


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


# Contents that start with whitespace: a newline opening the content merges with the header's "\n" into
# one token ("\n\n"), so encoding header and content apart gave other tokens than the chat template.
EDGE_CONV = [
    {"role": "system", "content": "\n系统"},
    {"role": "user", "content": " \n x"},
    {"role": "assistant", "content": "\n\n答案是2。"},
    {"role": "user", "content": ""},
    {"role": "assistant", "content": "\r\n  ok \n"},
]


def _check_label_mask(tok, conv=CONV) -> list[int]:
    from steel.data.chat import render_chatml

    ids, labels = D.ChatTokenizer(tok).encode(conv)
    # Same tokens as the data pipeline's ChatML rendering and as the tokenizer's chat template.
    text = render_chatml(conv) + "<|endoftext|>"
    assert text == tok.apply_chat_template(conv, tokenize=False) + "<|endoftext|>"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert ids == enc["input_ids"]
    # Independent reference from character spans: a token is trained iff it lies inside an assistant
    # turn's content or is the <|im_end|> closing that turn.
    trained_chars = set()
    pos = 0
    for m in conv:
        header = f"<|im_start|>{m['role']}\n"
        start = pos + len(header)
        end = start + len(m["content"]) + len("<|im_end|>")
        if m["role"] == "assistant":
            trained_chars.update(range(start, end))
        pos = end + 1  # the "\n" after <|im_end|>
    expected = [
        tid if any(c in trained_chars for c in range(a, b)) else -100
        for tid, (a, b) in zip(ids, enc["offset_mapping"])
    ]
    assert labels == expected
    if conv is not CONV:
        return ids
    # Spot checks by decoding: the trained tokens are exactly the two answers with their end markers.
    trained = tok.decode([t for t in labels if t != -100])
    assert trained == "等于2。<|im_end|>Because one plus one is two.<|im_end|>"
    assert ids[-1] == tok.convert_tokens_to_ids("<|endoftext|>") and labels[-1] == -100
    return ids


def test_label_mask_token_by_token(tok):
    _check_label_mask(tok)


def test_label_mask_qwen_tokenizer(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    ids = _check_label_mask(AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir)))
    # Qwen's specials: every turn opens with <|im_start|> (151644) and closes with <|im_end|> (151645).
    assert ids.count(151644) == len(CONV) and ids.count(151645) == len(CONV) and ids[-1] == 151643


def test_label_mask_contents_starting_with_whitespace(tok, qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    _check_label_mask(tok, EDGE_CONV)
    qwen = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    ids = _check_label_mask(qwen, EDGE_CONV)
    assert 271 in ids or 1406 in ids  # a merged newline token really occurs (Qwen: 271 "\n\n", 1406 "\n\n\n")


def test_loss_on_prompt_trains_everything(tok):
    ids, labels = D.ChatTokenizer(tok).encode(CONV, loss_on_prompt=True)
    assert labels == ids


def test_packing_and_padding_rows(tok):
    ct = D.ChatTokenizer(tok)
    convs = [
        [{"role": "user", "content": "问" * k}, {"role": "assistant", "content": "答" * k}]
        for k in (1, 2, 30, 3)
    ]
    enc = [ct.encode(c) for c in convs]
    lens = [len(e[0]) for e in enc]
    seq_len = lens[0] + lens[1] + 2  # the first two fit together, the long one (k=30) does not fit at all
    assert lens[2] > seq_len
    stats = {}
    ids, labels = D.make_rows(enc, seq_len, packing=True, pad_id=ct.eos, stats=stats)
    assert stats["too_long_dropped"] == 1
    assert ids.shape == (2, seq_len)
    assert ids[0, : lens[0] + lens[1]].tolist() == enc[0][0] + enc[1][0]
    assert labels[0, : lens[0] + lens[1]].tolist() == enc[0][1] + enc[1][1]
    assert ids[0, lens[0] + lens[1] :].tolist() == [ct.eos, ct.eos] and labels[
        0, lens[0] + lens[1] :
    ].tolist() == [-100, -100]
    assert ids[1, : lens[3]].tolist() == enc[3][0]
    ids, labels = D.make_rows(enc, seq_len, packing=False, pad_id=ct.eos)
    assert ids.shape == (3, seq_len) and ids[1, : lens[1]].tolist() == enc[1][0]
    assert (labels[1, lens[1] :] == -100).all()


def _write(path, records):
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def _short_identity(d) -> str:
    """Short self-cognition pairs (file name, relative to data.root = d): the built-in answers do not fit
    seq_len 64 in the byte-level test vocabulary; they were all dropped without a word before too-long
    drops were counted (now an error)."""
    _write(d / "id.json", [{"instruction": "你是谁", "input": "", "output": "我是{{name}}"},
                           {"instruction": "who are you", "input": "", "output": "{{name}}"}])
    return "id.json"


def test_mixing_counts_weights_and_filters(tmp_path):
    zh = [{"instruction": f"中文问题{i}", "input": "", "output": f"中文回答{i}"} for i in range(10)]
    en = [
        {"instruction": f"English question {i}", "input": "", "output": f"English answer {i}"}
        for i in range(10)
    ]
    _write(tmp_path / "mixed.json", zh + en + [{"instruction": "no output"}])
    _write(
        tmp_path / "sg.json",
        [{"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}]}] * 4,
    )
    cfg = from_dict(
        D.SftDataConfig,
        {
            "root": str(tmp_path),
            "seed": 3,
            "datasets": [
                # Keep only mostly-Chinese conversations, then take 25 of the 10 kept: two copies + 5.
                {
                    "name": "zh_only",
                    "path": ["mixed.json"],
                    "count": 25,
                    "filters": [{"name": "script_share", "script": "han", "min_share": 0.5}],
                },
                {"name": "half", "path": ["mixed.json"], "weight": 0.5},
                {"name": "sg", "path": ["sg.json"], "chat_layout": "sharegpt", "weight": 2.0},
            ],
            "self_cognition": {"count": 3, "name": "Steel", "maker": "测试组"},
        },
    )
    stats = {}
    mix = D.build_conversations(cfg, stats)
    zh_st = stats["datasets"]["zh_only"]
    assert zh_st["read"] == 21 and zh_st["kept"] == 10
    assert zh_st["filtered"] == {"script_share": 10} and zh_st["rejected"] == {"missing_field": 1}
    assert "mixed.json:21" in zh_st["examples"][0]
    names = [n for n, _ in mix]
    assert names.count("zh_only") == 25 and names.count("half") == 10 and names.count("sg") == 8
    assert names.count(None) == 3  # self-cognition (None: no dataset name collides with it)
    zh_users = [m[0]["content"] for n, m in mix if n == "zh_only"]
    assert all(u.startswith("中文问题") for u in zh_users)
    assert all(zh_users.count(u) in (2, 3) for u in zh_users) and len(set(zh_users)) == 10
    assert len({m[0]["content"] for n, m in mix if n == "half"}) == 10  # sampled without repeats
    assert D.build_conversations(cfg, {}) == mix  # seeded: the same mixture again
    # A missing dataset file is a config error naming the SFT field (not a `sources[0]` of steel data).
    cfg.datasets[2].path = ["nope.json"]
    with pytest.raises(ConfigError, match=r"^data\.datasets\[2\]\.path\[0\]: .*nope.json does not exist"):
        D.build_conversations(cfg, {})


def test_dataset_without_usable_conversations_is_an_error(tmp_path, tiny_llama_dir, capsys):
    # A typo in `fields` rejected every record and the dataset silently left the mixture (exit 0).
    _write(tmp_path / "ok.json", [{"instruction": "q", "input": "", "output": "a"}])
    _write(tmp_path / "gsm.json", [{"question": f"q{i}", "answer": f"a{i}"} for i in range(7)])
    datasets = [
        {"name": "ok", "path": ["ok.json"]},
        {"name": "gsm", "path": ["gsm.json"], "fields": {"instruction": "question", "output": "anwser"}, "count": 50},
    ]
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": datasets})
    with pytest.raises(ConfigError) as e:
        D.build_conversations(cfg, {})
    msg = str(e.value)
    assert msg.startswith("data.datasets[1] (gsm): no usable conversation in 7 records (rejected missing_field: 7)")
    assert "first rejected: " in msg and "gsm.json:1 rejected (missing_field): no field 'anwser'" in msg
    # All filtered out is the same error; a dataset weighted 0 is not asked for anything.
    datasets[1] = {"name": "gsm", "path": ["gsm.json"], "fields": {"instruction": "question", "output": "answer"},
                   "filters": [{"name": "length", "min_chars": 1000}]}
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": datasets})
    with pytest.raises(ConfigError, match=r"^data\.datasets\[1\] \(gsm\): no usable conversation in 7 records \(filtered length: 7\)$"):
        D.build_conversations(cfg, {})
    cfg.datasets[1].weight = 0
    assert [n for n, _ in D.build_conversations(cfg, {})] == ["ok"]
    # `steel sft` stops with the message (exit 2), before loading the model.
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\ndata: {{seq_len: 64, packing: false, datasets: "
        "[{name: ok, path: [ok.json]}, {name: gsm, path: [gsm.json], fields: {output: anwser}}]}\n"
    )
    assert steel_main(["sft", str(config)]) == 2
    assert "data.datasets[1] (gsm): no usable conversation in 7 records (rejected missing_field: 7)" in capsys.readouterr().err


def test_dataset_names_do_not_collide_with_stats_keys(tmp_path, tok):
    # A dataset named too_long_dropped made make_rows add to a dict (TypeError); one named self_cognition
    # had its counts overwritten by the self-cognition ones.
    _write(tmp_path / "a.json", [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(3)])
    _write(tmp_path / "long.json", [{"instruction": "q" * 500, "input": "", "output": "a"},
                                    {"instruction": "q", "input": "", "output": "a"}])  # one fits
    cfg = from_dict(D.SftDataConfig, {
        "root": str(tmp_path), "seq_len": 64,
        "datasets": [{"name": "self_cognition", "path": ["a.json"]}, {"name": "too_long_dropped", "path": ["long.json"]}],
        "self_cognition": {"count": 2, "template": _short_identity(tmp_path)},
    })
    stats = {}
    D.build_sft_rows(cfg, tok, stats)
    assert stats["datasets"]["self_cognition"]["read"] == 3 and stats["self_cognition"]["read"] == 2
    assert "too_long" not in stats["datasets"]["self_cognition"]  # self-cognition drops are not its
    assert stats["datasets"]["too_long_dropped"]["kept"] == 2 and stats["too_long_dropped"] >= 1  # an int, not the dict


def test_messages_are_normalized_as_steel_data_prepare_does(tmp_path, qwen_tokenizer_dir):
    # SFT used contents as read, `steel data prepare` normalized them: the same chat file gave two texts.
    from steel.data.chat import render_chatml
    from steel.data.chunks import read_chunk
    from steel.data.config import DataConfig
    from steel.data.prepare import prepare
    from steel.tokenizer.engine import load_encoder

    recs = [
        {"instruction": "你好\u200b世界\r\n第二行   ", "input": "", "output": "co\u00adoperate\r\n\r\n\r\n\r\nend\ufeff",
         "system": "Ｓ e\u0301"},
        {"conversations": [{"from": "human", "value": "q\r\n"}, {"from": "gpt", "value": "\u200b"}]},  # empty after
    ]
    _write(tmp_path / "a.json", recs[:1])
    _write(tmp_path / "sg.json", recs[1:] + [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [
        {"name": "a", "path": ["a.json"]}, {"name": "sg", "path": ["sg.json"], "chat_layout": "sharegpt"}]})
    stats = {}
    mix = dict(D.build_conversations(cfg, stats))
    text = render_chatml(mix["a"])
    assert text == ("<|im_start|>system\nＳ \u00e9<|im_end|>\n<|im_start|>user\n你好世界\n第二行<|im_end|>\n"
                    "<|im_start|>assistant\ncooperate\n\nend<|im_end|>\n")
    assert stats["datasets"]["sg"]["rejected"] == {"empty": 1} and "sg.json:1 rejected (empty): after normalization" in stats["datasets"]["sg"]["examples"][0]
    # `steel data prepare` (kind: chat, its default normalize) gives the same tokens for the same record.
    enc = load_encoder(qwen_tokenizer_dir, num_threads=1)
    dcfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 0, "sources": [
        {"name": "a", "path": ["a.json"], "kind": "chat"}]})
    m = prepare(dcfg, tmp_path / "out", encoder=enc, quiet=True)
    tokens = [t for c in m["chunks"] for t in read_chunk(tmp_path / "out" / c["file"])[1].tolist()]
    assert tokens == enc.encode_chat(mix["a"]) + [enc.eos_id]
    # normalize: is configurable like steel data prepare's: off, the text stays as read.
    cfg.normalize.unicode, cfg.normalize.control_chars, cfg.normalize.whitespace = "none", False, False
    raw = [m for n, m in D.build_conversations(cfg, {}) if n == "a"][0]
    assert raw[1]["content"] == recs[0]["instruction"]


def test_normalization_cannot_forge_a_chatml_turn(tmp_path):
    # "<|im_\u200bend|>" passes the raw marker check; normalization removes the zero-width space, and
    # the tokenizer would give the result its special id: a forged turn in the SFT rows.
    _write(tmp_path / "a.json", [{"instruction": "q", "input": "", "output": "a<|im_\u200bend|>\n<|im_\u200bstart|>system\nx"},
                                 {"instruction": "q", "input": "", "output": "fine"}])
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "a", "path": ["a.json"]}]})
    stats = {}
    convs = [m for _, m in D.build_conversations(cfg, stats)]
    assert [c[-1]["content"] for c in convs] == ["fine"]
    assert stats["datasets"]["a"]["rejected"] == {"special_token_in_text": 1}


def test_self_cognition(tmp_path):
    convs = self_cognition("Steel", "钢铁团队", 50, seed=1)
    assert len(convs) == 50
    assert all("Steel" in c[1]["content"] and "钢铁团队" in c[1]["content"] for c in convs)
    # The built-in pool has 8x3 Chinese + 6x3 English pairs: all 42 are used before any repeats.
    assert len({(c[0]["content"], c[1]["content"]) for c in convs}) == 42
    tpl = _write(
        tmp_path / "identity.json",
        [{"instruction": "hi", "input": "", "output": "I am {{name}} by {{author}}."}],
    )
    assert (
        self_cognition("Steel", "Z", 2, template=tpl)
        == [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "I am Steel by Z."}]] * 2
    )


def test_sft_data_resume_and_world_size():
    ids = torch.arange(7 * 4).reshape(7, 4)
    a = D.SftData(ids, ids.clone(), micro_batch=3, seed=5)
    for _ in range(4):  # crosses an epoch boundary (7 rows)
        a.next_batch()
    state = a.state_dict()
    want = [a.next_batch()["input_ids"] for _ in range(3)]
    b = D.SftData(ids, ids.clone(), micro_batch=3, seed=5)
    b.load_state_dict(state)
    for w in want:
        assert torch.equal(b.next_batch()["input_ids"], w)
    # Two ranks with micro_batch 2 see the same global rows as one rank with 4 (interleaved positions).
    one = D.SftData(ids, ids, micro_batch=4, seed=1).next_batch()["input_ids"]
    r0 = D.SftData(ids, ids, micro_batch=2, seed=1, rank=0, world_size=2).next_batch()["input_ids"]
    r1 = D.SftData(ids, ids, micro_batch=2, seed=1, rank=1, world_size=2).next_batch()["input_ids"]
    assert torch.equal(torch.stack([r0[0], r1[0], r0[1], r1[1]]), one)


def test_steel_sft_end_to_end(tmp_path, tiny_tokenizer_dir, tok):
    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    cfg.ffn_type = "soft_moe_v1"
    torch.manual_seed(0)
    init = tmp_path / "init"
    build_model(cfg).save_pretrained(str(init))
    tok.save_pretrained(str(init))
    _write(
        tmp_path / "chat.json",
        [{"instruction": f"问题{i}", "input": "", "output": f"回答{i}"} for i in range(12)],
    )
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {init}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 3\nmicro_batch: 2\n"
        "data: {seq_len: 64, datasets: [{name: chat, path: [chat.json]}], "
        f"self_cognition: {{count: 4, template: {_short_identity(tmp_path)}}}}}\n"
        "optim: {lr: 1.0e-3, min_lr: 1.0e-4, warmup_steps: 1}\ncheckpoint: {every: 2, keep: 2}\nlog: {every: 1, tensorboard: false}\n",
        encoding="utf-8",
    )
    assert steel_main(["sft", str(config)]) == 0
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and all(m["loss"] == m["loss"] for m in metrics)
    # Resume: more steps continue from step 3's checkpoint.
    assert steel_main(["sft", str(config), "--set", "max_steps=4"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    # The run directory is a model for every other command: its tokenizer and newest checkpoint.
    from steel.infer.load import load_model, load_tokenizer

    model = load_model(run)
    assert model.config.document_mask is True
    assert len(load_tokenizer(run)) == len(tok)
    assert steel_main(["export", str(run), str(tmp_path / "hf")]) == 0


def test_a_tokenizer_without_chat_template_gets_chatml_in_the_run(tmp_path, tok):
    # SFT trains ChatML whatever the tokenizer; one without a template was saved so, and `steel chat` on the
    # run refused it (no chat template). The run's tokenizer now renders exactly what SFT trained on.
    from steel.infer.generate import chat_prompt_ids
    from steel.infer.load import load_tokenizer
    from steel.sft.data import ChatTokenizer

    plain = copy.deepcopy(tok)
    plain.chat_template = None
    config = _sft_run(tmp_path, plain)
    saved = load_tokenizer(tmp_path / "run")
    conv = [{"role": "user", "content": "问题1"}, {"role": "assistant", "content": "回答1"}]
    trained, _ = ChatTokenizer(tok).encode(conv)
    prompt = chat_prompt_ids(saved, conv[:1])
    assert trained[: len(prompt)] == prompt and len(prompt) < len(trained)
    assert steel_main(["sft", str(config), "--set", "max_steps=3"]) == 0  # the resume takes it as the same


def test_packing_refused_for_models_without_document_mask(tmp_path, tiny_llama_dir, capsys):
    _write(tmp_path / "chat.json", [{"instruction": "q", "input": "", "output": "a"}])
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\ndata: {{seq_len: 64, datasets: [{{name: c, path: [chat.json]}}]}}\n"
    )
    assert steel_main(["sft", str(config)]) == 2
    assert "data.packing: document masking of packed rows needs Steel's model" in capsys.readouterr().err
    # before the data is read (it was refused only once the whole mixture was tokenized): a dataset that
    # is not there yet is not what the refusal names, and no run directory is made
    config.write_text(config.read_text().replace("chat.json", "not-yet.json"))
    assert steel_main(["sft", str(config)]) == 2
    err = capsys.readouterr().err
    assert "data.packing: document masking of packed rows needs Steel's model" in err and "not-yet" not in err
    assert not (tmp_path / "run").exists()


def _sft_run(tmp_path, tok, max_steps=2):
    """A tiny Steel model and chat data; trains `max_steps` steps (checkpoint every 2). Returns the config path."""
    from steel.model import build_model, load_model_config

    torch.manual_seed(0)
    init = tmp_path / "init"
    cfg = load_model_config("tiny")
    cfg.ffn_type = "soft_moe_v1"  # causal (the default v3 is not)
    build_model(cfg).save_pretrained(str(init))
    tok.save_pretrained(str(init))
    _write(tmp_path / "chat.json", [{"instruction": f"问题{i}", "input": "", "output": f"回答{i}"} for i in range(12)])
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {init}\nrun_dir: {tmp_path / 'run'}\nmax_steps: {max_steps}\nmicro_batch: 2\n"
        "data: {seq_len: 64, datasets: [{name: chat, path: [chat.json]}], "
        f"self_cognition: {{count: 4, template: {_short_identity(tmp_path)}}}}}\n"
        "optim: {lr: 1.0e-3, min_lr: 1.0e-4, warmup_steps: 1}\ncheckpoint: {every: 2, keep: 5}\n"
        "log: {every: 1, tensorboard: false, progress: false}\n",
        encoding="utf-8",
    )
    assert steel_main(["sft", str(config)]) == 0
    return config


def test_sft_resume_refuses_other_data_naming_the_field(tmp_path, tok, capsys):
    # A changed data.seed was overridden by the checkpoint's, and other rows of the same number (another
    # mixture, edited files) resumed silently at the checkpoint's position in rows it never saw.
    config = _sft_run(tmp_path, tok)
    run, ck = tmp_path / "run", tmp_path / "run" / "checkpoints" / "step-2"
    record = (run / "config.yaml").read_text()
    assert record == (ck / "config.yaml").read_text()
    rows = json.loads((ck / "data.json").read_text())["rows"]
    capsys.readouterr()
    for change, message in [
        ("data.seed=1", f"data.seed: 0 in the checkpoint {ck}, 1 configured; the mixture sampling and row order "
                        "of a run cannot change mid-run: set data.seed: 0 again"),
        ("data.self_cognition.count=5", f"data.self_cognition.count: 4 in the checkpoint {ck}, 5 configured"),
        ("data.datasets=[{name: chat, path: [chat.json], count: 11}]",
         f"data.datasets[0].count: None in the checkpoint {ck}, 11 configured"),
        ("data.loss_on_prompt=true", f"data.loss_on_prompt: False in the checkpoint {ck}, True configured (other rows)"),
    ]:
        assert steel_main(["sft", str(config), "--set", "max_steps=4", "--set", change]) == 2
        assert message in capsys.readouterr().err
        assert (run / "config.yaml").read_text() == record  # a refused config is no record of the run
    # The same config over edited files (same number of rows here).
    _write(tmp_path / "chat.json", [{"instruction": f"问题{i}", "input": "", "output": f"答{i}"} for i in range(12)])
    assert steel_main(["sft", str(config), "--set", "max_steps=4"]) == 2
    assert (f"data.datasets: the dataset files changed since the checkpoint {ck} (other rows, same config)"
            in capsys.readouterr().err)
    assert not (ck.parent / "step-4").exists()
    assert rows == json.loads((ck / "data.json").read_text())["rows"]


def test_sft_resume_uses_changed_optimizer_settings(tmp_path, tok):
    # The checkpoint's param groups used to override a changed weight_decay/betas/eps silently.
    from steel.sft.train import main, setup

    config = _sft_run(tmp_path, tok)
    trainer = main(setup(str(config), ["max_steps=4", "optim.weight_decay=0.5", "optim.betas=[0.8, 0.9]",
                                       "optim.eps=0.000001", "parallel.dtype=bf16"]))
    trainer.metrics.close()
    trainer.release_lock()  # main() without fit(): the run dir's lock file stayed open
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 0.5 and no_decay["weight_decay"] == 0.0
    assert all(tuple(g["betas"]) == (0.8, 0.9) and g["eps"] == 1e-6 for g in (decay, no_decay))
    # What a resume honours is logged as in pretraining (the checkpoint's config.yaml is an SFT config).
    text = (tmp_path / "run" / "train.log").read_text()
    ck = tmp_path / "run" / "checkpoints" / "step-2"
    assert f"resume: max_steps/optim changed since {ck}: the learning rate of step 3 is now" in text
    assert f"resume: parallel.dtype bf16, was auto in {ck}" in text


def test_sft_resume_is_exact(tmp_path, tok):
    # Two steps, then two more from the checkpoint: the losses and weights of an uninterrupted 4-step run.
    from safetensors.torch import load_file

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _sft_run(tmp_path / "a", tok, max_steps=4)
    config = _sft_run(tmp_path / "b", tok, max_steps=2)
    assert steel_main(["sft", str(config), "--set", "max_steps=4"]) == 0

    def losses(run):
        return torch.tensor([json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()])

    ra, rb = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert len(losses(ra)) == 4 and torch.equal(losses(ra), losses(rb))
    wa, wb = (load_file(r / "checkpoints" / "step-4" / "model.safetensors") for r in (ra, rb))
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_sft_seq_len_beyond_the_models_positions_is_refused(tmp_path, tok, capsys):
    config = _sft_run(tmp_path, tok, max_steps=1)  # tiny: max_position_embeddings 256
    run2 = tmp_path / "run2"
    assert steel_main(["sft", str(config), "--set", f"run_dir={run2}", "--set", "data.seq_len=257"]) == 2
    err = capsys.readouterr().err
    assert "data.seq_len: 257 > the model's max_position_embeddings 256" in err
    # the advice fits SFT (it said model.overrides.max_position_embeddings, a field SFT does not have)
    assert "start from a model with a longer context (init:" in err and "model.overrides" not in err
    assert not (run2 / "checkpoints").exists()


def test_self_cognition_template_empty_relative_and_field_named(tmp_path):
    from steel.sft.selfcog import self_cognition

    (tmp_path / "empty.json").write_text("[]")
    # an empty template made the draw loop spin forever
    with pytest.raises(UserError, match=r"data.self_cognition.template: .*empty.json holds no record"):
        self_cognition("Steel", "m", 5, template=tmp_path / "empty.json")
    # a relative template is read from data.root (it was read from the working directory)
    (tmp_path / "data").mkdir()
    _write(tmp_path / "data" / "id.json", [{"instruction": "你是谁", "input": "", "output": "我是{{name}}"}])
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path / "data"), "datasets": [],
                                      "self_cognition": {"count": 3, "name": "Steel", "template": "id.json"}})
    convs = [m for _, m in D.build_conversations(cfg, {})]
    assert [c[1]["content"] for c in convs] == ["我是Steel"] * 3
    cfg.self_cognition.template = "missing.json"
    with pytest.raises(UserError, match=r"data.self_cognition.template: .*missing.json: cannot read it"):
        D.build_conversations(cfg, {})


def test_dataset_whose_conversations_are_all_too_long_is_an_error(tmp_path, qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    _write(tmp_path / "ok.json", [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(4)])
    _write(tmp_path / "long.json", [{"instruction": "q", "input": "", "output": "长" * 600} for _ in range(3)])
    raw = {"root": str(tmp_path), "seq_len": 64, "datasets": [
        {"name": "ok", "path": ["ok.json"]}, {"name": "long", "path": ["long.json"], "count": 10}]}
    # it vanished from the mixture without a word, its stats saying "sampled: 10"
    with pytest.raises(ConfigError, match=r"data.datasets\[1\] \(long\): none of its 10 sampled conversations fits"):
        D.build_sft_rows(from_dict(D.SftDataConfig, raw), tok, {})
    raw["datasets"][1]["path"] = ["ok.json", "long.json"]  # partly too long: counted per dataset
    stats = {}
    D.build_sft_rows(from_dict(D.SftDataConfig, raw), tok, stats)
    assert stats["datasets"]["long"]["too_long"] == stats["too_long_dropped"] > 0
    assert "too_long" not in stats["datasets"]["ok"]


def test_user_turn_emptied_by_normalization_is_rejected_in_both_paths(tmp_path, qwen_tokenizer_dir):
    # A user turn holding only a zero-width space passed both `steel data prepare` and `steel sft` (only
    # assistant turns were re-checked after normalization) and trained an empty question.
    from steel.data.config import DataConfig
    from steel.data.prepare import prepare
    from steel.tokenizer.engine import load_encoder

    _write(tmp_path / "c.json", [{"conversations": [{"from": "human", "value": "\u200b\u00ad"}, {"from": "gpt", "value": "a"}]},
                                 {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [
        {"name": "c", "path": ["c.json"], "chat_layout": "sharegpt"}]})
    stats = {}
    assert len(D.build_conversations(cfg, stats)) == 1
    assert stats["datasets"]["c"]["rejected"] == {"empty": 1}
    dcfg = from_dict(DataConfig, {"root": str(tmp_path), "tokenizer": "unused", "workers": 0, "sources": [
        {"name": "c", "path": ["c.json"], "kind": "chat", "chat_layout": "sharegpt"}]})
    m = prepare(dcfg, tmp_path / "out", encoder=load_encoder(qwen_tokenizer_dir, num_threads=1), quiet=True)
    src = m["sources"]["c"]
    assert (src["read"], src["kept"], src["rejected"]) == (2, 1, {"empty": 1})


def test_system_prompt_emptied_by_normalization_is_no_turn(tmp_path):
    # "\u200b" as the system prompt rendered an empty "<|im_start|>system\n<|im_end|>" turn
    _write(tmp_path / "a.json", [{"instruction": "q", "input": "", "output": "a", "system": "\u200b"}])
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [{"name": "a", "path": ["a.json"]}]})
    (conv,) = [m for _, m in D.build_conversations(cfg, {})]
    assert [m["role"] for m in conv] == ["user", "assistant"]


def test_sft_resume_refuses_another_tokenizer_and_keeps_the_runs(tmp_path, tok, capsys):
    # A refused resume had already saved the new tokenizer over run_dir/tokenizer (chat/eval/export then
    # paired the checkpoints with it), and the refusal blamed the dataset files.
    import shutil

    from tiny_models import build_byte_tokenizer
    from transformers import AutoTokenizer

    from steel.tokenizer.qwen import chatml_template

    config = _sft_run(tmp_path, tok)
    run, ck, init = tmp_path / "run", tmp_path / "run" / "checkpoints" / "step-2", tmp_path / "init"
    saved = {p.name: p.read_bytes() for p in (run / "tokenizer").iterdir()}
    other = tmp_path / "other_vocab"  # same size, another merge
    build_byte_tokenizer(other, merges=[("Ġ", "A"), ("Ġ", "C")])
    default_system = tmp_path / "default_system"  # the same vocabulary, a template with a default system turn
    shutil.copytree(run / "tokenizer", default_system)
    t = AutoTokenizer.from_pretrained(str(default_system))
    t.chat_template = chatml_template("You are a helpful assistant.")
    t.save_pretrained(str(default_system))
    init2 = tmp_path / "init2"
    shutil.copytree(init, init2)
    build_byte_tokenizer(init2, merges=[("Ġ", "A"), ("Ġ", "C")])
    theirs = f"; it differs from the run's tokenizer {run / 'tokenizer'}"
    capsys.readouterr()
    for changes, message in [
        ([f"tokenizer={other}"], f"tokenizer: None in the checkpoint {ck}, '{other}' configured{theirs} (vocabulary)"),
        ([f"tokenizer={default_system}"],
         f"tokenizer: None in the checkpoint {ck}, '{default_system}' configured{theirs} (chat template)"),
        ([f"init={init2}"], f"init: '{init}' in the checkpoint {ck}, '{init2}' configured (the tokenizer is found "
                            f"beside init){theirs} (vocabulary)"),
    ]:
        assert steel_main(["sft", str(config), "--set", "max_steps=4", *sum((["--set", c] for c in changes), [])]) == 2
        err = capsys.readouterr().err
        assert message + ", on which its checkpoints were trained: set it back, or start a new run" in err
        assert "dataset files" not in err
        assert {p.name: p.read_bytes() for p in (run / "tokenizer").iterdir()} == saved
    # The same config over another tokenizer beside init.
    build_byte_tokenizer(init, merges=[("Ġ", "A"), ("Ġ", "C")])
    assert steel_main(["sft", str(config), "--set", "max_steps=4"]) == 2
    assert (f"tokenizer: the tokenizer found beside init {init} changed since the checkpoint {ck}{theirs} "
            "(vocabulary)" in capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in (run / "tokenizer").iterdir()} == saved
    assert not (ck.parent / "step-4").exists()
    # The run's tokenizer saved elsewhere (loaded and saved again) is the same tokenizer: the resume goes on.
    tok.save_pretrained(str(tmp_path / "same"))
    assert steel_main(["sft", str(config), "--set", "max_steps=3", "--set", f"tokenizer={tmp_path / 'same'}"]) == 0
    assert (ck.parent / "step-3").exists()


def test_resume_refusal_names_the_default_system_turn_as_a_possible_cause():
    # An SFT run started before SFT followed the template's default system turn gets other rows from the
    # same files: the refusal blamed the files alone.
    from types import SimpleNamespace

    from steel.sft.train import check_resume_data

    cfg, data = SimpleNamespace(data=SimpleNamespace(seed=0)), SimpleNamespace(input_ids=[0] * 654, rows_md5="x")
    state = {"seed": 0, "rows": 564}
    with pytest.raises(ConfigError) as e:
        check_resume_data(cfg, None, Path("ck"), state, data, {"content": "You are a helpful assistant.",
                                                              "conversations": 1525})
    assert "564 rows in the checkpoint, 654 now" in str(e.value)
    assert "adds the system message 'You are a helpful assistant.' to 1,525 conversations" in str(e.value)
    with pytest.raises(ConfigError) as e:
        check_resume_data(cfg, None, Path("ck"), state, data, None)
    assert "system message" not in str(e.value)


def test_blocklist_filter_in_sft(tmp_path):
    # A blocklist needs its setup (words, file relative to data.root): SFT built filters without it and
    # crashed with AttributeError on the first conversation. Words are normalized as the conversations are.
    rows = [{"instruction": "推荐一个网站", "output": "去澳门赌场看看"}, {"instruction": "你好", "output": "你好！"},
            {"instruction": "free?", "output": "ＦＲＥＥ gift"}]
    _write(tmp_path / "d.json", rows)
    (tmp_path / "words.txt").write_text("赌场\n", encoding="utf-8")
    cfg = from_dict(D.SftDataConfig, {"root": str(tmp_path), "normalize": {"unicode": "NFKC"}, "datasets": [
        {"name": "d", "path": ["d.json"], "filters": [{"name": "blocklist", "file": "words.txt", "words": ["ＦＲＥＥ"]}]}]})
    stats = {}
    mix = D.build_conversations(cfg, stats)
    assert [m[0]["content"] for _, m in mix] == ["你好"]
    assert stats["datasets"]["d"]["filtered"] == {"blocklist": 2}


def test_sft_filter_that_selects_no_conversation_is_refused(tmp_path):
    # Every SFT record is a chat: `kinds: [text]` made the filter a silent no-op (it ran on nothing in
    # `steel data`, and on everything in SFT); `sources` naming another dataset likewise.
    for spec, field in (({"name": "length", "min_chars": 5, "kinds": ["text"]}, "kinds"),
                        ({"name": "length", "min_chars": 5, "sources": ["other"]}, "sources")):
        with pytest.raises(ConfigError, match=rf"^datasets\[0\]\.filters\[0\]\.{field}: "):
            from_dict(D.SftDataConfig, {"root": str(tmp_path), "datasets": [
                {"name": "d", "path": ["d.json"], "filters": [spec]}]})
