"""Tests written by a mutation audit of `steel.infer` (session 15, D): each one kills a deliberate mutation of
generation, chat or export that the rest of the suite let pass, against hand-computed values."""

from __future__ import annotations

import pytest
from tiny_models import build_tiny_llama

from steel.cli import UserError
from steel.config import ConfigError
from steel.infer import generate as G


def run(gen):
    """All ids a generate_ids generator yields, and its StopReason."""
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration as stop:
            return out, stop.value


def test_the_context_bounds_the_reply_to_the_positions_left():
    model = build_tiny_llama(300, max_positions=32)
    assert G.new_token_budget(model, 30, 10) == 2  # 30 + 2 = 32 positions, the last one used
    assert G.new_token_budget(model, 31, 10) == 1
    assert G.new_token_budget(model, 20, 10) == 10
    with pytest.raises(UserError, match="prompt is 32 tokens but the model's context is 32 positions"):
        G.new_token_budget(model, 32, 10)  # no position left for even one new token
    opts = G.SamplingOptions(max_new_tokens=10, temperature=0.0)
    ids, reason = run(G.generate_ids(model, list(range(1, 29)), opts))
    assert (len(ids), reason) == (4, "max_positions")
    ids, reason = run(G.generate_ids(model, [5, 17, 42], opts))
    assert (len(ids), reason) == (10, "max_new_tokens")


def test_a_prompt_id_one_past_the_embeddings_is_refused():
    model = build_tiny_llama(300)
    opts = G.SamplingOptions(max_new_tokens=1, temperature=0.0)
    with pytest.raises(UserError, match=r"prompt token id 300 is outside the model's vocabulary \(300 embeddings\)"):
        run(G.generate_ids(model, [5, 300], opts))
    assert len(run(G.generate_ids(model, [5, 299], opts))[0]) == 1


@pytest.mark.parametrize("top_p", [0.0, -0.1, 1.01])
def test_top_p_outside_zero_one_is_refused(top_p):
    with pytest.raises(ConfigError, match=r"top_p: must be in \(0, 1\]"):
        G.SamplingOptions(top_p=top_p).validate()


def test_a_document_the_model_starts_after_its_own_eos_decodes_as_the_full_forward():
    # With document_mask the EOS ends its document (it is read with the text before it) and the token after
    # it starts a new one: the cache resets after the EOS, not at it.
    import torch

    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    cfg.vocab_size, cfg.ffn_type, cfg.document_mask = 300, "swiglu", True
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    eos = model.config.eos_token_id
    prompt = [5, 17, 42, 99, 7]

    def full_forward_greedy(n):
        seq = list(prompt)
        for _ in range(n):
            with torch.no_grad():
                seq.append(int(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
        return seq[len(prompt):]

    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)
        t = full_forward_greedy(4)[2]
        assert t > eos
        model.lm_head.weight[eos] = model.lm_head.weight[t]  # ties with t, and argmax takes the lower id: EOS
    ref = full_forward_greedy(12)
    assert eos in ref[:-1]  # the model ends a document mid-reply and writes on
    opts = G.SamplingOptions(max_new_tokens=12, temperature=0.0)
    assert list(G.generate_ids(model, prompt, opts, use_cache=True)) == ref
    assert list(G.generate_ids(model, prompt, opts, use_cache=False)) == ref


def test_stop_ids_include_a_tokenizers_own_eos(tmp_path):
    from tiny_models import build_byte_tokenizer

    tok = build_byte_tokenizer(tmp_path / "tok")
    ids = [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    assert G.stop_token_ids(tok) == ids  # <|endoftext|> is its EOS
    tok.add_special_tokens({"eos_token": "</s>"})  # a Llama-style EOS besides them
    assert G.stop_token_ids(tok) == [*ids, tok.convert_tokens_to_ids("</s>")]


def test_only_a_written_generation_config_adds_stop_ids(tmp_path):
    from tiny_models import build_byte_tokenizer
    from transformers import GenerationConfig

    tok = build_byte_tokenizer(tmp_path / "tok")
    model = build_tiny_llama(300)
    # derived from config.json (LlamaConfig's eos_token_id 2, byte 2 of this tokenizer): not an end of turn
    assert model.generation_config._from_model_config and model.config.eos_token_id == 2
    assert G.model_stop_ids(model, tok) == G.stop_token_ids(tok)
    model.generation_config = GenerationConfig(eos_token_id=[7, 2])  # a chat model's own, as saved with it
    assert G.model_stop_ids(model, tok) == [*G.stop_token_ids(tok), 7, 2]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval(),
            AutoTokenizer.from_pretrained(str(tiny_llama_dir)))


def test_chat_history_room_is_the_context_less_at_most_half_for_the_reply(llama):
    from steel.infer.chat import chat_loop, fit_history

    model, tok = llama
    sys_turn = [{"role": "system", "content": "你是Steel"}]
    n = len(G.chat_prompt_ids(tok, sys_turn + [{"role": "user", "content": ""}]))
    # a system prompt that takes the history's room exactly is accepted (budget = (n + 1) - 1)
    one = G.SamplingOptions(max_new_tokens=1, temperature=0.0)
    assert chat_loop(model, tok, one, [], print, system="你是Steel", max_context=n + 1) == sys_turn
    # a reply of 10,000 tokens asked for leaves the history half of a 2n-token context, not nothing
    big = G.SamplingOptions(max_new_tokens=10_000, temperature=0.0)
    assert chat_loop(model, tok, big, [], print, system="你是Steel", max_context=2 * n) == sys_turn
    with pytest.raises(UserError, match=f"takes {n} tokens, more than the {n - 1} the history may use in a "
                                        f"{2 * n - 2}-token context"):
        chat_loop(model, tok, big, [], print, system="你是Steel", max_context=2 * n - 2)
    # a history of exactly the room fits whole
    hist = sys_turn + [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"},
                       {"role": "user", "content": "再见"}]
    ids = G.chat_prompt_ids(tok, hist)
    assert fit_history(tok, hist, len(ids)) == (hist, ids)


def test_chat_says_how_many_exchanges_it_dropped(llama):
    from steel.infer.chat import chat_loop

    model, tok = llama
    line = "一二三四五六七八九十"
    n1 = len(G.chat_prompt_ids(tok, [{"role": "user", "content": line}]))
    opts = G.SamplingOptions(max_new_tokens=2, temperature=0.0)
    notes = []
    # room for one exchange (the line and a 2-token reply), not two: the first one goes when the line comes again
    history = chat_loop(model, tok, opts, [line, line], lambda s: None, max_context=n1 + 4, notify=notes.append)
    assert notes == [f"(steel chat: history over the {n1 + 4}-token context: dropped the oldest 1 exchange(s))\n"]
    assert [m["role"] for m in history] == ["user", "assistant"]
