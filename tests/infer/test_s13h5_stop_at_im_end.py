"""Generation stops at `<|im_end|>`, the end of a ChatML turn, not only at the tokenizer's EOS.

A mutation audit (session 13) left `<|im_end|>` out of the stop ids and the suite stayed green: the tests'
ChatML tokenizer has `<|endoftext|>` as its EOS, and their stop test ends on that. An SFT model ends each
reply with `<|im_end|>` (the token SFT trains it to emit), and `steel chat` ran on past it into a turn of its own.
"""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from steel.infer import generate as G


def test_generation_stops_at_im_end(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end != tok.eos_token_id  # the case at hand: the turn end is not the tokenizer's EOS
    prompt = G.chat_prompt_ids(tok, [{"role": "user", "content": "hello"}])
    opts = G.SamplingOptions(max_new_tokens=6, temperature=0.0)
    free = list(G.generate_ids(model, prompt, opts, stop_ids=G.stop_token_ids(tok)))
    assert len(free) == 6 and im_end not in free
    calls = []

    def end_turn_at_the_third_token(module, args, out):
        calls.append(1)
        if len(calls) >= 3:  # one forward per new token (cached decoding)
            out[:, -1, im_end] = 1e4
        return out

    model.lm_head.register_forward_hook(end_turn_at_the_third_token)
    got = list(G.generate_ids(model, prompt, opts, stop_ids=G.stop_token_ids(tok)))
    assert got == free[:2]  # stopped at <|im_end|>, which is not yielded
