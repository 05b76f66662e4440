"""C-Eval / CMMLU multiple choice: readers, prompts, scoring, extraction, aggregation, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_models import build_byte_tokenizer, build_tiny_llama, write_csv, write_json

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.eval import mc

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

CEVAL_HEADER_DEV = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
CEVAL_HEADER_VAL = ["id", "question", "A", "B", "C", "D", "answer"]
# Answers of the val fixture: C is the answer of 3 of 6 questions in subject 1, 1 of 4 in subject 2.
VAL_ANSWERS = {"computer_network": "CACBDC", "high_school_history": "ACBD"}
TOPICS = [
    "光合作用",
    "牛顿运动定律",
    "唐朝诗人",
    "网络传输协议",
    "细胞有丝分裂",
    "长江流域气候",
    "市场经济体制",
    "量子力学基础",
    "古代货币制度",
    "海洋生物多样性",
]


def make_ceval_dir(root: Path) -> Path:
    """A C-Eval directory in the released layout: dev (with explanations), val, test (no answers), mapping."""
    for k, (subject, answers) in zip((0, 6), VAL_ANSWERS.items()):
        dev = [
            [str(i), f"{subject}例题{i}", f"甲{i}", f"乙{i}", f"丙{i}", f"丁{i}", "ABCDA"[i], f"解析{i}"]
            for i in range(5)
        ]
        write_csv(root / "dev" / f"{subject}_dev.csv", CEVAL_HEADER_DEV, dev)
        val = [
            [str(i), f"关于{TOPICS[k + i]}的说法，下列哪项正确", f"{TOPICS[k + i]}甲", "乙", "丙", "丁", a]
            for i, a in enumerate(answers)
        ]
        write_csv(root / "val" / f"{subject}_val.csv", CEVAL_HEADER_VAL, val)
        write_csv(
            root / "test" / f"{subject}_test.csv",
            CEVAL_HEADER_VAL[:-1],
            [["0", "测试题", "1", "2", "3", "4"]],
        )
    write_json(
        root / "subject_mapping.json",
        {
            "computer_network": ["Computer Network", "计算机网络", "STEM"],
            "high_school_history": ["High School History", "高中历史", "Humanities"],
        },
    )
    return root


# ------------------------------------------------------------------------------------------ readers


def test_cmmlu_reader_on_shared_data():
    path = SHARED / "cmmlu" / "dev" / "agronomy.csv"
    # The shared data sits beside every checkout and in CI: its absence is a broken setup, not a skip.
    assert path.is_file(), f"{path} not found (expected ../shared/data beside the repo)"
    qs = mc.read_questions(path, "cmmlu", "agronomy")
    assert len(qs) == 5
    # First data row of the released file: `0,肉牛屠宰后，胴体的哪个部位肉质较好,胸,腹,大腿,小腿,C`
    assert qs[0].question == "肉牛屠宰后，胴体的哪个部位肉质较好"
    assert qs[0].choices == ("胸", "腹", "大腿", "小腿")
    assert qs[0].answer == "C"
    assert qs[0].where.endswith("agronomy.csv:2")


def test_cmmlu_reader_quoted_newlines_and_line_numbers(tmp_path):
    p = write_csv(
        tmp_path / "x.csv",
        ["", "Question", "A", "B", "C", "D", "Answer"],
        [["0", "第一行\n第二行", "a,1", "b", "c", "d", "B"], ["1", "q2", "a", "b", "c", "d", "D"]],
    )
    qs = mc.read_questions(p, "cmmlu", "x")
    assert [q.answer for q in qs] == ["B", "D"]
    assert qs[0].question == "第一行\n第二行" and qs[0].choices[0] == "a,1"
    assert qs[1].where.endswith("x.csv:4")  # the quoted newline makes row 1 span lines 2-3
    # A byte that is not UTF-8 (a GBK re-save, say) is one error naming file:line, not a traceback.
    p.write_bytes(p.read_bytes() + "2,中文,a,b,c,d,A\n".encode("gbk"))
    with pytest.raises(UserError, match=r"x\.csv:5: invalid UTF-8"):
        mc.read_questions(p, "cmmlu", "x")


def test_ceval_reader_all_splits(tmp_path):
    root = make_ceval_dir(tmp_path / "ceval")
    dev = mc.read_questions(root / "dev" / "computer_network_dev.csv", "ceval", "computer_network")
    assert [d.answer for d in dev] == list("ABCDA") and dev[2].explanation == "解析2"
    val = mc.read_questions(root / "val" / "computer_network_val.csv", "ceval", "computer_network")
    assert "".join(q.answer for q in val) == VAL_ANSWERS["computer_network"]
    test = mc.read_questions(
        root / "test" / "computer_network_test.csv", "ceval", "computer_network", need_answer=False
    )
    assert test[0].answer is None and test[0].choices == ("1", "2", "3", "4")
    assert mc.list_subjects("ceval", root, "val") == ["computer_network", "high_school_history"]
    table = mc.subject_table("ceval", root)
    assert table["high_school_history"].name_zh == "高中历史" and table["high_school_history"].categories == (
        "Humanities",
    )


def test_reader_errors_name_file_and_line(tmp_path):
    bad = write_csv(
        tmp_path / "b.csv",
        ["", "Question", "A", "B", "C", "D", "Answer"],
        [["0", "q", "a", "b", "c", "d", "A"], ["1", "q", "a", "b", "c", "d", "E"]],
    )
    with pytest.raises(UserError, match=r"b\.csv:3: answer 'E'"):
        mc.read_questions(bad, "cmmlu", "b")
    wrong = write_csv(
        tmp_path / "w.csv",
        ["id", "question", "A", "B", "C", "D", "answer"],
        [["0", "q", "a", "b", "c", "d", "A"]],
    )
    with pytest.raises(UserError, match=r"w\.csv:1: not a cmmlu CSV"):
        mc.read_questions(wrong, "cmmlu", "w")
    short = write_csv(
        tmp_path / "s.csv", ["id", "question", "A", "B", "C", "D", "answer"], [["0", "q", "a", "b", "c", "A"]]
    )
    with pytest.raises(UserError, match=r"s\.csv:2: expected 7 fields, got 6"):
        mc.read_questions(short, "ceval", "s")


def test_builtin_subject_tables():
    from steel.eval.subjects import CEVAL_SUBJECTS, CMMLU_SUBJECTS

    assert len(CEVAL_SUBJECTS) == 52 and len(CMMLU_SUBJECTS) == 67
    assert CMMLU_SUBJECTS["ancient_chinese"] == ("古汉语", ("Social Science", "China specific"))
    assert CEVAL_SUBJECTS["computer_network"] == ("Computer Network", "计算机网络", "STEM")


# ------------------------------------------------------------------------------------------ prompts


def _q(i: int, answer: str | None = "A") -> mc.Question:
    return mc.Question("s", f"问题{i}", (f"a{i}", f"b{i}", f"c{i}", f"d{i}"), answer, "-")


def test_prompt_zero_shot_exact():
    assert mc.build_prompt("ceval", "计算机网络", [], _q(9), 0) == (
        "以下是中国关于计算机网络考试的单项选择题，请选出其中的正确答案。\n\n问题9\nA. a9\nB. b9\nC. c9\nD. d9\n答案："
    )
    assert mc.build_prompt("cmmlu", "农学", [], _q(9), 0) == (
        "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n题目：问题9\nA. a9\nB. b9\nC. c9\nD. d9\n答案是："
    )


def test_prompt_five_shots_exact():
    dev = [_q(i, "ABCDB"[i]) for i in range(5)]
    expected = "以下是中国关于计算机网络考试的单项选择题，请选出其中的正确答案。\n\n"
    for i in range(5):
        expected += f"问题{i}\nA. a{i}\nB. b{i}\nC. c{i}\nD. d{i}\n答案：{'ABCDB'[i]}\n\n"
    expected += "问题9\nA. a9\nB. b9\nC. c9\nD. d9\n答案："
    assert mc.build_prompt("ceval", "计算机网络", dev, _q(9), 5) == expected
    with pytest.raises(UserError, match="expected 0..5"):
        mc.build_prompt("ceval", "x", dev, _q(9), 6)


# ------------------------------------------------------------------------------------------ extractor


@pytest.mark.parametrize(
    "text,expected",
    [
        ("C", "C"),
        ("答案：B", "B"),
        ("答案是 (D)。", "D"),
        ("正确答案为A，因为胸部肉质最好。", "A"),
        ("A和B都不对，所以答案是C", "C"),  # explicit statement beats earlier letters
        ("首先分析A选项……答案：B。再看看，最终答案：D", "D"),  # CoT: the last statement wins
        ("答案是A。不对，应该选C", "C"),  # ... whichever pattern states it (was A: the first pattern won)
        ("I'd choose B... no. Answer: A。最后选D", "D"),
        ("B. 腹", "B"),
        ("（C）大腿", "C"),
        ("这道题选D", "D"),
        ("The answer is C.", "C"),
        ("As an AI, I cannot answer.", None),  # 'A' inside English words is not a letter
        ("我不知道", None),
        ("A或者B", None),  # two different letters, no statement: undecided, counted wrong
        ("应该是大腿", "C"),  # quotes exactly one option's text
        # "选项X" mentions an option; a plain "选X" yields to a stated answer (all were the mention before)
        ("答案：A\n\n解析：选项B错误，选项C错误。", "A"),
        ("答案是C，因为选项A的说法是错误的。", "C"),
        ("B。选项D是干扰项", "B"),
        ("答案为C。选择A是常见错误。", "C"),
        ("所以选项B正确", "B"),
        ("我选择B", "B"),
        # only upper-case letters: these gave 'a'/'b'/'d', never equal to a key, yet not counted no_answer
        ("Answer is a", None),
        ("The answer is (b).", None),
        ("answer is a bit tricky, B", "B"),
        # common chat phrasings (all None but the last, which gave A)
        ("答案是选项C。选项A错误，因为胸部肉少。", "C"),
        ("正确答案是选项C，A、B、D都不对。", "C"),
        ("正确选项是B，A不对", "B"),
        ("正确的选项为 D。", "D"),
        ("A项错误，B项错误，D项错误，C项正确。", "C"),  # CMMLU's `([ABCD])(.*?)正确` reads A here
        ("选项C正确，选项A错误", "C"),
        ("选项C是正确的，A不是", "C"),
        ("C项不正确，B项正确", "B"),
        ("有人认为答案是A，但分析后本题选B。", "B"),  # a later concluding choice is the last statement
        ("答案是C，因为A项正确的前提不成立", "C"),  # a statement of the answer outranks a judgment
    ],
)
def test_extract_answer(text, expected):
    assert mc.extract_answer(text, ("胸", "腹", "大腿", "小腿")) == expected


def test_extract_answer_negative_question():
    """Asked for the wrong option, "X正确" judges a wrong answer: it is not read; stated answers still are."""
    question = "下列说法错误的是"
    assert mc.extract_answer("A项错误，B项正确", None, question) is None  # "A项错误" is the answer here
    assert mc.extract_answer("A项错误，B项正确", None, "下列说法正确的是") == "B"
    assert mc.extract_answer("不正确的是A", None, question) == "A"
    assert mc.extract_answer("答案：A。B项正确，C项正确", None, question) == "A"


# ------------------------------------------------------------------------------------------ scoring


def _biased_model(vocab_size: int, favour: dict[int, float]):
    """A tiny Llama whose LM head ignores the hidden state: logits = bias, so the favoured tokens always win."""
    model = build_tiny_llama(vocab_size)
    head = torch.nn.Linear(32, vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for t, v in favour.items():
            head.bias[t] = v
    model.lm_head = head
    return model.eval()


@pytest.mark.parametrize("scoring", ["letter", "continuation"])
def test_forced_letter_scores_its_share(tmp_path, tiny_tokenizer_dir, scoring):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    c_id = tok.encode("C", add_special_tokens=False)[0]
    # " C" is two tokens in the tiny vocabulary ("Ġ", "C") while " A"/" B" are one: the continuation
    # path must sum over tokens. Favour both "Ġ" and "C" so that " C" is the most likely continuation.
    space_id = tok.encode(" ", add_special_tokens=False)[0]
    model = _biased_model(
        len(tok), {c_id: 10.0, space_id: 10.0} if scoring == "continuation" else {c_id: 10.0}
    )
    root = make_ceval_dir(tmp_path / "ceval")
    opts = mc.McOptions(task="ceval", data=root, shots=2, scoring=scoring, batch_size=3)
    res = mc.run_mc(model, tok, opts)
    # Always predicting C scores exactly the share of C answers: 3/6 and 1/4.
    assert res["subjects"]["computer_network"] == {"accuracy": 0.5, "n": 6, "correct": 3}
    assert res["subjects"]["high_school_history"] == {"accuracy": 0.25, "n": 4, "correct": 1}
    assert res["overall"]["micro"] == pytest.approx(4 / 10)
    assert res["overall"]["macro"] == pytest.approx((0.5 + 0.25) / 2)
    assert res["categories"]["STEM"]["macro"] == 0.5 and res["categories"]["Humanities"]["micro"] == 0.25
    assert all(d["pred"] == "C" for d in opts.details)
    assert res["scoring"] == scoring and res["n_questions"] == 10


def test_continuation_one_token_path(tmp_path):
    """With " A".." D" each one token (as in Qwen's vocabulary) the one-forward-per-question path is used."""
    tok = build_byte_tokenizer(tmp_path / "tok", merges=[("Ġ", L) for L in "ABCD"])
    c_id = tok.encode(" C", add_special_tokens=False)
    assert len(c_id) == 1
    model = _biased_model(len(tok), {c_id[0]: 10.0, tok.encode("D", add_special_tokens=False)[0]: 20.0})
    res = mc.run_mc(
        model,
        tok,
        mc.McOptions(task="ceval", data=make_ceval_dir(tmp_path / "ceval"), shots=0, scoring="continuation"),
    )
    # "D" (no space) is the top next token but is not a continuation candidate; " C" is the best of " A".." D".
    assert res["overall"]["micro"] == pytest.approx(4 / 10)


def test_batched_scores_match_unbatched_full_forward(tiny_llama_dir):
    """Left padding + logits only at the last positions == one unpadded full forward per request."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    g = torch.Generator().manual_seed(1)
    reqs = []
    for i, (n_ctx, n_tgt) in enumerate([(5, 1), (17, 2), (9, 3), (30, 1), (12, 2)]):
        ids = torch.randint(0, 256, (n_ctx + n_tgt,), generator=g).tolist()
        reqs.append(mc.ScoreRequest((i, 0), ids[:n_ctx], ids[n_ctx:]))
    got = mc.score_requests(model, reqs, pad_id=0, batch_size=3)
    for r in reqs:
        full = r.context + r.targets
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)  # (T, V)
        want = sum(float(logp[len(r.context) - 1 + j, t]) for j, t in enumerate(r.targets))
        # NOTE: fp32; padding changes the reduction order of attention only (masked keys), ~1e-6 relative.
        assert got[r.key] == pytest.approx(want, rel=1e-4, abs=1e-4)


def test_aggregate_macro_micro_multi_category():
    table = {
        "a": mc.SubjectInfo("甲", ("STEM",)),
        "b": mc.SubjectInfo("乙", ("Social Science", "China specific")),
        "c": mc.SubjectInfo("丙", ("Social Science",)),
    }
    res = mc.aggregate("cmmlu", {"a": [True, False], "b": [True, True, True, False], "c": [False]}, table)
    assert res["categories"]["Social Science"]["macro"] == pytest.approx((0.75 + 0.0) / 2)
    assert res["categories"]["Social Science"]["micro"] == pytest.approx(3 / 5)
    assert res["categories"]["China specific"] == {"macro": 0.75, "micro": 0.75, "subjects": 1, "n": 4}
    assert res["overall"]["macro"] == pytest.approx((0.5 + 0.75 + 0.0) / 3)
    assert res["overall"]["micro"] == pytest.approx(4 / 7)
    assert res["n_questions"] == 7


def test_cli_json_markdown_and_rerun_identical(tmp_path, tiny_llama_dir):
    root = make_ceval_dir(tmp_path / "ceval")
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}.json"
        rc = steel_main(
            [
                "eval",
                "mc",
                "--model",
                str(tiny_llama_dir),
                "--task",
                "ceval",
                "--data",
                str(root),
                "--shots",
                "1",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        assert rc == 0
        outs.append(json.loads(out.read_text(encoding="utf-8")))
    a, b = outs
    for r in (a, b):
        r.pop("seconds")
    assert a == b
    assert set(a) >= {"task", "mode", "shots", "subjects", "categories", "overall", "n_questions"}
    assert a["n_questions"] == 10 and a["split"] == "val"
    md = (tmp_path / "r0.md").read_text(encoding="utf-8")
    assert "| **overall** | 2 | 10 |" in md
    lines = (tmp_path / "r0.questions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10


def test_generate_mode_counts_unanswered(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    root = make_ceval_dir(tmp_path / "ceval")
    # A model that always says "x": no letter in any reply.
    x_id = tok.encode("x", add_special_tokens=False)[0]
    model = _biased_model(len(tok), {x_id: 10.0})
    opts = mc.McOptions(task="ceval", data=root, shots=0, mode="generate", max_new_tokens=3, batch_size=4)
    res = mc.run_mc(model, tok, opts)
    assert res["no_answer"]["total"] == 10 and res["overall"]["micro"] == 0.0
    assert opts.details[0]["raw"] == "xxx"
    # A model that always answers "D" (one token allowed) scores the share of D answers (1/6 and 1/4).
    d_id = tok.encode("D", add_special_tokens=False)[0]
    model = _biased_model(len(tok), {d_id: 10.0})
    opts = mc.McOptions(task="ceval", data=root, shots=1, mode="generate", max_new_tokens=1, batch_size=4)
    res = mc.run_mc(model, tok, opts)
    assert res["no_answer"]["total"] == 0
    assert (
        res["subjects"]["computer_network"]["correct"] == 1
        and res["subjects"]["high_school_history"]["correct"] == 1
    )


@pytest.mark.parametrize("ffn", ["soft_moe_v3", "soft_moe_v2"])
def test_position_mixing_steel_model_scores_in_padded_batches(tiny_tokenizer_dir, ffn):
    """Soft-MoE v2/v3 mix positions but keep pads out of their slots: their prompts are scored in one
    padded batch (they ran one at a time) and give what each gives alone. A model whose modeling file
    predates that mask (an older export's remote code) still runs its rows one by one."""
    from transformers import AutoTokenizer

    from steel.model import build_model, load_model_config

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    cfg = load_model_config("tiny")
    cfg.ffn_type, cfg.initializer_range = ffn, 0.2  # a visible MoE branch: pads moved logits by ~4 before
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    calls = []
    model.model.register_forward_pre_hook(lambda *a: calls.append(1))
    seqs = [tok.encode(mc.build_prompt("ceval", "计算机网络", [], _q(i), 0) + "x" * (3 * i), add_special_tokens=False)
            for i in range(5)]
    batched = mc.last_logits(model, seqs, 1, pad_id=0)
    assert len(calls) == 1  # one padded batch
    single = torch.cat([mc.last_logits(model, [s], 1, pad_id=0) for s in seqs])
    # fp32, the same sums over T blocked differently by the padding: ~1e-6 of the logits' scale (measured
    # 4e-7 for v3, 1.2e-6 for v2); a pad leaking into a slot moves them by whole units
    scale = single.abs().max().item()
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5 * scale)
    calls.clear()
    model.soft_moe_masks_padding = False  # as the class of an export made before the mask
    assert torch.equal(mc.last_logits(model, seqs, 1, pad_id=0), single)
    assert len(calls) == len(seqs)


def test_chunked_causal_moe_scores_like_unbatched(tiny_tokenizer_dir):
    """soft_moe_causal rebuilds its slots every moe_chunk_size-th token (steel-1b's training config uses
    64): left pads used to shift that grid; the model starts it at each row's first real token, so such
    a model is scored in padded batches and gives what each prompt gives alone."""
    from transformers import AutoTokenizer

    from steel.infer.load import mixes_positions
    from steel.model import build_model, load_model_config

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    cfg = load_model_config("tiny")
    cfg.ffn_type, cfg.moe_chunk_size, cfg.initializer_range = "soft_moe_causal", 4, 0.2  # a visible MoE branch
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert not mixes_positions(model)
    seqs = [tok.encode("题目" + "x" * (i + 1), add_special_tokens=False) for i in range(4)]  # pads 3, 2, 1, 0
    batched = mc.last_logits(model, seqs, 1, pad_id=0)
    single = torch.cat([mc.last_logits(model, [s], 1, pad_id=0) for s in seqs])
    # fp32, the same sums laid out differently (per-row grids): a few ulps; the shifted grid was off by ~1
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_generate_mode_is_plain_greedy_whatever_generation_config_says(tiny_llama_dir):
    # A Steel export's generation_config.json asks for repetition_penalty 1.05: `eval mc --mode generate`
    # on the export answered differently from the run directory with the same weights.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steel.infer.generate import chat_prompt_ids, stop_token_ids

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    msgs = [{"role": "user", "content": "以下是单项选择题 ABCD ABCD"}]
    ids = chat_prompt_ids(tok, msgs)
    stops = stop_token_ids(tok)
    ref = list(ids)  # independent greedy: argmax of a full forward per step
    with torch.no_grad():
        for _ in range(12):
            nxt = int(model(torch.tensor([ref])).logits[0, -1].argmax())
            if nxt in stops:
                break
            ref.append(nxt)
    want = tok.decode(ref[len(ids):], skip_special_tokens=True)
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.no_repeat_ngram_size = 1
    assert mc.predict_generate_mode(model, tok, [msgs], 12, 1) == [want]
    penalised = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert tok.decode(penalised[0, len(ids):].tolist(), skip_special_tokens=True) != want  # the test can fail


def test_cot_raises_max_new_tokens_to_512(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    root = make_ceval_dir(tmp_path / "ceval")
    x_id = tok.encode("x", add_special_tokens=False)[0]
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    model = _biased_model(len(tok), {x_id: 10.0})
    model.lm_head.bias.data[eos] = 0.0
    model.config.max_position_embeddings = 2048  # room for the prompt + 512 (RoPE needs no table)
    opts = mc.McOptions(task="ceval", data=root, shots=0, mode="generate", cot=True, max_new_tokens=200,
                        batch_size=4, subjects=["computer_network"], limit=1)
    mc.run_mc(model, tok, opts)
    assert opts.max_new_tokens == 512 and opts.details[0]["raw"] == "x" * 512  # 200 was kept before


def test_out_must_be_the_json_file(tmp_path, tiny_llama_dir, capsys):
    root = make_ceval_dir(tmp_path / "ceval")
    for bad in ("res.md", "res.jsonl"):  # the .md table written beside --out replaced the JSON itself
        rc = steel_main(["eval", "mc", "--model", str(tiny_llama_dir), "--task", "ceval", "--data", str(root),
                         "--out", str(tmp_path / bad)])
        assert rc == 2 and "give the JSON file" in capsys.readouterr().err
        assert not (tmp_path / bad).exists()


# ------------------------------------------------------------------------------------------ review fixes


def test_headline_is_the_macro_average(tmp_path, tiny_tokenizer_dir):
    """CMMLU's get_results and C-Eval's paper average over subjects; micro is lm-evaluation-harness's."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    model = _biased_model(len(tok), {tok.encode("C", add_special_tokens=False)[0]: 10.0})
    res = mc.run_mc(model, tok, mc.McOptions(task="ceval", data=make_ceval_dir(tmp_path / "ceval"), shots=0))
    # Always C: 3/6 and 1/4 -> macro (0.5 + 0.25) / 2 = 37.50, micro 4/10 = 40.00.
    assert res["headline_average"] == "macro"
    md = mc.markdown_report(res)
    assert "Headline: **37.50** (macro, mean over subjects" in md
    assert "micro: 40.00 (mean over questions, as lm-evaluation-harness groups report)" in md


def test_two_element_ceval_mapping_keeps_the_builtin_category(tmp_path):
    root = make_ceval_dir(tmp_path / "ceval")
    # One upstream revision of C-Eval's subject_mapping.json has this entry; it aborted the run.
    mapping = json.loads((root / "subject_mapping.json").read_text(encoding="utf-8"))
    mapping["clinical_medicine"] = ["Clinical Medicine", "临床医学"]
    mapping["new_subject"] = ["New Subject", "新科目"]
    write_json(root / "subject_mapping.json", mapping)
    table = mc.subject_table("ceval", root)
    assert table["clinical_medicine"] == mc.SubjectInfo("临床医学", ("Other",))  # C-Eval's category
    assert table["new_subject"] == mc.SubjectInfo("新科目", ())
    assert table["computer_network"].categories == ("STEM",)
    # A subject of no category counts in the overall averages only.
    res = mc.aggregate("ceval", {"computer_network": [True, False], "new_subject": [True]}, table)
    assert res["overall"] == {"macro": pytest.approx(0.75), "micro": pytest.approx(2 / 3)}
    assert set(res["categories"]) == {"STEM"} and res["categories"]["STEM"]["n"] == 2
    mapping["bad"] = ["only English"]
    write_json(root / "subject_mapping.json", mapping)
    with pytest.raises(UserError, match=r"entry 'bad' is neither \[en, zh, category\], \[en, zh\]"):
        mc.subject_table("ceval", root)


@pytest.mark.parametrize("mode", ["logprob", "generate"])
def test_dev_split_leaves_each_question_out_of_its_own_shots(tmp_path, monkeypatch, tiny_tokenizer_dir, mode):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    root = make_ceval_dir(tmp_path / "ceval")
    seen: list = []

    def capture(model, tokenizer, prompts, *args, **kwargs):
        seen.extend(prompts)
        return [("A", [0.0] * 4)] * len(prompts) if mode == "logprob" else ["A"] * len(prompts)

    monkeypatch.setattr(mc, "predict_letter_mode" if mode == "logprob" else "predict_generate_mode", capture)
    opts = mc.McOptions(task="ceval", data=root, split="dev", shots=2, mode=mode, subjects=["computer_network"])
    mc.run_mc(None, tok, opts)
    dev = mc.read_questions(root / "dev" / "computer_network_dev.csv", "ceval", "computer_network")
    # Each dev question's 2 shots are the first two of the other dev questions, in file order.
    pools = [[1, 2], [0, 2], [0, 1], [0, 1], [0, 1]]
    if mode == "logprob":
        want = [mc.build_prompt("ceval", "计算机网络", [dev[j] for j in p], q, 2) for q, p in zip(dev, pools)]
    else:
        want = [mc.chat_messages("计算机网络", [dev[j] for j in p], q, 2, False) for q, p in zip(dev, pools)]
    assert seen == want
    assert [d["shots"] for d in opts.details] == [2] * 5
    # 5 dev questions leave 4 others: 5 shots is refused, naming the file and the most it can be.
    opts = mc.McOptions(task="ceval", data=root, split="dev", shots=5, mode=mode)
    with pytest.raises(UserError, match=r"computer_network_dev\.csv: --split dev .* has 5, so --shots 4 at most"):
        mc.run_mc(None, tok, opts)


@pytest.mark.parametrize("text, want", [
    # The answer first, then an explanation that judges another option: the judgment ("X项正确") was read
    # before the opening letter and the plain choice.
    ("C\n解析：A项正确表述应为……", "C"),
    ("C。因为A项正确的前提不成立", "C"),
    ("B。A选项正确的地方在于……但B更全面", "B"),
    ("C。理由：D项是正确的，但不全面", "C"),
    ("A。其余选项中，C正确但不完整", "A"),
    ("我选B，因为A项正确性存疑", "B"),
    # no answer first: the judgment; a list of letters is no opening answer
    ("A不正确，B不正确，C正确", "C"),
    ("A、B、C都不正确，D正确", "D"),
])
def test_extract_answer_first_then_explanation(text, want):
    assert mc.extract_answer(text) == want
