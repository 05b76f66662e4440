"""Tests written by a mutation audit of `steel.sft` (session 15, D): each one kills a deliberate mutation that
the rest of the suite let pass, asserting hand-computed rows."""

from __future__ import annotations

from steel.sft.data import IGNORE, make_rows


def test_a_conversation_of_exactly_seq_len_tokens_is_kept_not_dropped_as_too_long():
    # README: conversations *longer* than data.seq_len are dropped; one that fills a row exactly is a row
    a = ([11, 12, 13, 14], [IGNORE, IGNORE, 13, 14])
    b = ([21, 22, 23, 24, 25], [IGNORE, 22, 23, 24, 25])
    for packing in (True, False):
        stats = {}
        ids, labels = make_rows([a, b], seq_len=4, packing=packing, pad_id=0, stats=stats)
        assert ids.tolist() == [[11, 12, 13, 14]]
        assert labels.tolist() == [[IGNORE, IGNORE, 13, 14]]
        assert stats["too_long_dropped"] == 1  # b: 5 > 4


def test_the_mixture_interleaves_its_datasets_in_a_seeded_order(tmp_path):
    import json

    from steel.sft import data as D

    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            [{"instruction": f"{name}-q{i}", "output": f"{name}-a{i}"} for i in range(12)]))
    cfg = D.SftDataConfig(root=str(tmp_path), seed=5,
                          datasets=[D.SftDataset(name=n, path=[f"{n}.json"]) for n in ("a", "b")])
    mix = D.build_conversations(cfg, {})
    again = D.build_conversations(cfg, {})
    assert mix == again  # seeded
    names = [n for n, _ in mix]
    assert sorted(names) == ["a"] * 12 + ["b"] * 12  # every conversation once
    # shuffled together: not the 12 of a, then the 12 of b (with packing, a row of one dataset only)
    assert names[:12] != ["a"] * 12
    assert {m[0]["content"] for _, m in mix} == {f"{n}-q{i}" for n in "ab" for i in range(12)}


def test_every_epoch_has_its_own_order_of_all_rows():
    import torch

    from steel.sft.data import SftData

    rows = torch.arange(8)[:, None].repeat(1, 4)  # row i holds token i
    data = SftData(rows, rows.clone(), micro_batch=8, seed=3)
    epochs = [data.next_batch()["input_ids"][:, 0].tolist() for _ in range(3)]
    assert all(sorted(e) == list(range(8)) for e in epochs)  # each epoch sees each row once
    # reshuffled per epoch: the same order every epoch would repeat one batch composition for the whole run
    assert len({tuple(e) for e in epochs}) == 3


def test_a_template_that_inserts_two_system_turns_is_refused(tiny_tokenizer_dir):
    # Only one system turn is a default SFT can insert: two of them (markers inside the "default") would be
    # written into one system message's content, not as the template renders them.
    import pytest
    from transformers import AutoTokenizer

    from steel.config import ConfigError
    from steel.sft import data as D

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    tok.chat_template = (
        "{%- if messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nA<|im_end|>\\n<|im_start|>system\\nB<|im_end|>\\n' }}{%- endif %}"
        "{%- for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    with pytest.raises(ConfigError, match="renders a conversation without a system message as"):
        D.template_default_system(tok)


def test_resume_on_other_rows_of_the_same_count_is_refused():
    import pytest
    import torch

    from steel.config import ConfigError
    from steel.sft.data import SftData

    rows = torch.arange(24).reshape(6, 4)
    state = SftData(rows, rows.clone(), micro_batch=2).state_dict()
    edited = rows.clone()
    edited[3, 1] = 99  # one token of one conversation changed in the dataset file
    with pytest.raises(ConfigError, match="the checkpoint's rows differ from those the config now gives"):
        SftData(edited, edited.clone(), micro_batch=2).load_state_dict(state)
    SftData(rows, rows.clone(), micro_batch=2).load_state_dict(state)  # the same rows resume
