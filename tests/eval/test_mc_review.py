"""Review findings for `steel eval mc` measured against the benchmarks' own harnesses and stock HF models."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_mc import SHARED, make_ceval_dir
from transformers import AutoModelForCausalLM, AutoTokenizer

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.eval import mc


def test_generate_mode_stops_at_the_eos_ids_of_a_models_generation_config(tmp_path, tiny_llama_dir):
    # A stock chat model ends its turn with an id its generation_config.json names (Gemma's <end_of_turn>,
    # Phi-3's <|end|>) that is neither <|im_end|>, <|endoftext|> nor the tokenizer's EOS: `eval mc --mode
    # generate` ran past it into a turn the model wrote for itself (its marker hidden by the decode), and
    # the extractor read letters from that turn. `steel generate`/`chat` stop there since 5f992f8.
    from steel.infer.generate import chat_prompt_ids

    d = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, d)
    tok = AutoTokenizer.from_pretrained(str(d))
    model = AutoModelForCausalLM.from_pretrained(str(d)).eval()
    msgs = mc.chat_messages("计算机网络", [], mc.Question("s", "问题", tuple("甲乙丙丁"), "A", "-"), 0, False)
    ids = chat_prompt_ids(tok, msgs)
    free = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, eos_token_id=None,
                          pad_token_id=0)[0, len(ids):].tolist()
    end = next(t for i, t in enumerate(free) if i >= 2 and t not in free[:i])  # a turn of >= 2 tokens
    cut = free.index(end)
    (d / "generation_config.json").write_text(json.dumps({"eos_token_id": [end], "bos_token_id": 1}))
    model = AutoModelForCausalLM.from_pretrained(str(d)).eval()
    # Independent reference: transformers' greedy search under that generation config stops at `end`.
    hf = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert hf[0, len(ids):].tolist() == free[: cut + 1]
    want = tok.decode(free[:cut], skip_special_tokens=True)
    assert want != tok.decode(free, skip_special_tokens=True)  # the test can fail
    assert mc.predict_generate_mode(model, tok, [msgs, msgs], 8, 2) == [want, want]


def test_ceval_reports_the_hard_average():
    # C-Eval's leaderboard reports Avg(Hard), the mean over its 8 hardest STEM subjects, beside the four
    # categories; it was missing, so a C-Eval Hard number could not be compared with the published ones.
    table = mc.subject_table("ceval", SHARED / "ceval")  # C-Eval's own subject_mapping.json
    per_subject = {
        "advanced_mathematics": [True, False, False, False],  # Hard, STEM
        "college_physics": [True, True, False],  # Hard, STEM
        "computer_network": [True, True],  # STEM only
        "law": [False, True],  # Humanities
    }
    res = mc.aggregate("ceval", per_subject, table)
    assert res["categories"]["Hard"] == {
        "macro": pytest.approx((1 / 4 + 2 / 3) / 2), "micro": pytest.approx(3 / 7), "subjects": 2, "n": 7
    }
    assert res["categories"]["STEM"]["subjects"] == 3 and res["categories"]["STEM"]["n"] == 9
    assert list(res["categories"]) == ["STEM", "Humanities", "Hard"]
    assert res["overall"]["macro"] == pytest.approx((1 / 4 + 2 / 3 + 1 + 1 / 2) / 4)  # each subject once
    assert "| Hard | 2 | 7 |" in mc.markdown_report({**res, "task": "ceval", "split": "val", "shots": 5,
                                                      "mode": "logprob", "scoring": "letter",
                                                      "headline_average": "macro"})
    # CMMLU has no such subset: its five categories only.
    cm = mc.aggregate("cmmlu", {"high_school_physics": [True]}, mc.subject_table("cmmlu"))
    assert list(cm["categories"]) == ["STEM"]
    from steel.eval.subjects import CEVAL_HARD, CEVAL_SUBJECTS

    assert len(CEVAL_HARD) == 8 and all(CEVAL_SUBJECTS[s][2] == "STEM" for s in CEVAL_HARD)


@pytest.mark.parametrize("mode", ["logprob", "generate"])
def test_a_dev_file_shorter_than_shots_is_refused_naming_it(tmp_path, tiny_llama_dir, mode, capsys):
    # A dev file with 2 questions and --shots 5: generate mode gave each question 2 shots and reported 5
    # (result "shots" and every question's "shots"); logprob mode failed on its first prompt, after the
    # model had loaded, naming the subject but not the file.
    root = make_ceval_dir(tmp_path / "ceval")
    dev = root / "dev" / "computer_network_dev.csv"
    dev.write_text("\n".join(dev.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    opts = mc.McOptions(task="ceval", data=root, shots=5, mode=mode, subjects=["computer_network"])
    with pytest.raises(UserError, match=r"computer_network_dev\.csv: --shots 5 but 'computer_network' has 2 dev"):
        mc.load_benchmark(opts)
    argv = ["eval", "mc", "--model", str(tmp_path / "no-model"), "--task", "ceval", "--data", str(root),
            "--mode", mode, "--device", "cpu"]
    assert steel_main(argv) == 2  # refused before the model path is even looked at
    assert "computer_network_dev.csv: --shots 5 but" in capsys.readouterr().err
    # As many shots as there are is fine, and so is the other subject's full dev file.
    opts = mc.McOptions(task="ceval", data=root, shots=2, mode=mode, max_new_tokens=1)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    model.config.max_position_embeddings = 2048  # room for 2-shot chat prompts (RoPE needs no table)
    mc.run_mc(model, AutoTokenizer.from_pretrained(str(tiny_llama_dir)), opts)
    assert {d["shots"] for d in opts.details} == {2}


def test_result_says_it_is_a_limit_run_and_its_dtype(tmp_path, tiny_llama_dir):
    # A `--limit 2` result (the first 2 questions of each subject) read like a full benchmark result: its
    # JSON and its Markdown headline did not say so, nor in which dtype the model ran.
    root = make_ceval_dir(tmp_path / "ceval")
    base = ["eval", "mc", "--model", str(tiny_llama_dir), "--task", "ceval", "--data", str(root), "--shots", "1",
            "--device", "cpu"]
    assert steel_main(base + ["--limit", "2", "--out", str(tmp_path / "q.json")]) == 0
    quick = json.loads((tmp_path / "q.json").read_text(encoding="utf-8"))
    assert quick["limit"] == 2 and quick["n_questions"] == 4 and quick["dtype"] == "float32"
    md = (tmp_path / "q.md").read_text(encoding="utf-8")
    assert "**Quick check**: the first 2 questions of each subject only (--limit)" in md
    assert steel_main(base + ["--dtype", "bfloat16", "--out", str(tmp_path / "f.json")]) == 0
    full = json.loads((tmp_path / "f.json").read_text(encoding="utf-8"))
    assert full["limit"] is None and full["n_questions"] == 10 and full["dtype"] == "bfloat16"
    assert "Quick check" not in (tmp_path / "f.md").read_text(encoding="utf-8")
    assert "max_new_tokens" not in full
    opts = mc.McOptions(task="ceval", data=root, shots=0, mode="generate", max_new_tokens=3, limit=1)
    res = mc.run_mc(AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval(),
                    AutoTokenizer.from_pretrained(str(tiny_llama_dir)), opts)
    assert res["max_new_tokens"] == 3 and res["limit"] == 1


# A setting another mode ignores is refused, on the command line and in a config, before the model is loaded:
# `--cot` without generate mode scored the next-token logits of A..D as if --cot had not been given, and
# `--scoring` in generate mode (which reads the reply) was silently ignored, the result saying "generate".
@pytest.mark.parametrize("flags, yaml_lines, message, accepted", [
    (["--cot"], "cot: true\n", "cot: needs mode generate", ["--cot", "--mode", "generate"]),
    # (in a config only a scoring other than the default is seen: `scoring: letter` reads as unset)
    (["--mode", "generate", "--scoring", "letter"], "mode: generate\nscoring: continuation\n",
     "scoring: only for mode logprob", ["--scoring", "letter"]),
    (["--mode", "generate", "--scoring", "continuation"], "mode: generate\nscoring: continuation\n",
     "scoring: only for mode logprob", ["--scoring", "continuation"]),
], ids=["cot", "scoring-letter", "scoring-continuation"])
def test_a_setting_of_another_mode_is_refused(tmp_path, capsys, flags, yaml_lines, message, accepted):
    cmmlu = str(SHARED / "cmmlu")
    argv = ["eval", "mc", "--task", "cmmlu", "--data", cmmlu, "--model", str(tmp_path / "no-model")]
    assert steel_main(argv + flags) == 2
    err = capsys.readouterr().err
    got = "(got mode generate)" if "scoring" in message else "(got mode logprob)"
    assert f"--{message} {got}" in err and "does not exist" not in err
    cfg = tmp_path / "mode.yaml"
    cfg.write_text(f"task: cmmlu\ndata: {cmmlu}\n{yaml_lines}", encoding="utf-8")
    assert steel_main(["eval", "mc", "--config", str(cfg), "--model", str(tmp_path / "no-model")]) == 2
    assert f"{cfg}: {message}" in capsys.readouterr().err
    # With the mode it belongs to it reaches the model (and fails there, as this one does not exist).
    assert steel_main(argv + accepted) == 2
    assert message.split(": ", 1)[1] not in capsys.readouterr().err


def test_a_split_file_without_questions_is_refused_naming_it(tmp_path, capsys):
    # A header-only test/val file (a truncated copy) gave a subject listed at 0.00 with 0 questions, that
    # the overall row counted among its subjects ("| **overall** | 2 |") while its averages left it out.
    root = make_ceval_dir(tmp_path / "ceval")
    val = root / "val" / "high_school_history_val.csv"
    val.write_text(val.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"high_school_history_val\.csv: no questions \(only a header\)"):
        mc.load_benchmark(mc.McOptions(task="ceval", data=root, shots=1))
    argv = ["eval", "mc", "--task", "ceval", "--data", str(root), "--model", str(tmp_path / "no-model")]
    assert steel_main(argv) == 2 and "no questions (only a header)" in capsys.readouterr().err
    qs, _dev, _table = mc.load_benchmark(mc.McOptions(task="ceval", data=root, subjects=["computer_network"]))
    assert len(qs["computer_network"]) == 6  # the other subject is read as before
