"""What filters and dedup see of a record in `steel data prepare`: normalized blocklist words, chat text
without its system turns."""

from __future__ import annotations

import json
from pathlib import Path

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.filters import build_filters
from steel.data.normalize import Normalizer
from steel.data.prepare import prepare


def _cfg(d: Path, sources: list[dict], **over) -> DataConfig:
    raw = {"root": str(d), "tokenizer": "unused (encoder passed in)", "chunk_tokens": 64, "workers": 0,
           "sources": sources}
    raw.update(over)
    return from_dict(DataConfig, raw)


def test_blocklist_words_are_normalized_like_the_documents():
    # Documents are filtered after normalization; a word written as the raw data writes it (traditional
    # script with t2s, full-width letters under NFKC) must still match the normalized document.
    cfg = from_dict(DataConfig, {"normalize": {"unicode": "NFKC"}, "sources": [{"name": "a", "path": ["x"]}]})
    norm = Normalizer(cfg.normalize)
    doc = norm("限时ＦＲＥＥ领取")  # NFKC: "限时FREE领取"
    assert doc == "限时FREE领取"  # the independent reference: what the filter is given
    f = build_filters([{"name": "blocklist", "words": ["ＦＲＥＥ"]}], setup=True, normalize=norm)[0]
    assert not f.keep(doc)
    # without a normalizer (a plain build_filters) the word is taken as written
    g = build_filters([{"name": "blocklist", "words": ["ＦＲＥＥ"]}], setup=True)[0]
    assert g.keep(doc)


def test_prepare_filters_with_normalized_blocklist_words(tmp_path, enc):
    docs = ["限时ＦＲＥＥ领取，点击链接马上就有", "这是一篇普通的文章，讲的是天气和城市的故事。"]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in docs),
                                      encoding="utf-8")
    cfg = _cfg(tmp_path, [{"name": "a", "path": ["a.jsonl"]}], normalize={"unicode": "NFKC"},
               filters=[{"name": "blocklist", "words": ["ＦＲＥＥ"]}])
    m = prepare(cfg, tmp_path / "out", encoder=enc, quiet=True)
    assert m["sources"]["a"]["kept"] == 1 and m["sources"]["a"]["filtered"]["blocklist"] == 1


def test_a_default_system_prompt_does_not_make_chats_near_duplicates(tmp_path, enc):
    # Short, distinct Q&A pairs under a long source-level `system:` prompt: the shared system text
    # dominated their shingles and near-dedup dropped distinct conversations as copies of each other.
    qa = [("天为什么是蓝的？", "因为瑞利散射。"), ("一加一等于几？", "等于二。"), ("北京在哪里？", "在中国北方。"),
          ("猫喜欢吃什么？", "猫喜欢吃鱼。"), ("水的沸点是多少？", "一百摄氏度。")]
    rows = [{"instruction": q, "output": a} for q, a in qa]
    (tmp_path / "qa.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    system = ("你是一个乐于助人、诚实而且无害的中文助手。请用简洁清楚的语言回答用户提出的每一个问题；"
              "遇到不确定的事实时，要说明你的把握有多大，不要编造来源。回答数学题时先列出步骤，再给结论；"
              "回答生活问题时给出可以马上照做的建议。涉及医疗、法律和投资的问题，提醒用户咨询专业人士。"
              "如果问题本身含糊不清，先用一句话确认用户的意思。不要重复用户的问题，也不要使用过多的客套话。"
              "保持礼貌和耐心，对儿童和老人尤其要用浅显的词语。")
    src = {"name": "qa", "path": ["qa.json"], "kind": "chat", "chat_layout": "alpaca", "system": system}
    m = prepare(_cfg(tmp_path, [src], filters=[]), tmp_path / "out", encoder=enc, quiet=True)
    s = m["sources"]["qa"]
    assert s["kept"] == len(qa), s
    # the system prompt is still rendered into every kept conversation
    assert s["tokens"] > len(qa) * len(enc.encode(system))


def test_length_filter_on_chat_counts_the_conversation_not_its_system_prompt(tmp_path, enc):
    rows = [{"instruction": "嗯", "output": "好"}, {"instruction": "请介绍一下长城的历史。", "output": "长城始建于春秋战国时期，历代多次修筑。"}]
    (tmp_path / "qa.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    src = {"name": "qa", "path": ["qa.json"], "kind": "chat", "chat_layout": "alpaca", "system": "你是一个助手。" * 5}
    m = prepare(_cfg(tmp_path, [src], filters=[{"name": "length", "min_chars": 10}]), tmp_path / "out",
                encoder=enc, quiet=True)
    assert m["sources"]["qa"]["kept"] == 1 and m["sources"]["qa"]["filtered"]["length"] == 1
