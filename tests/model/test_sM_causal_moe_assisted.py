"""soft_moe_causal keeps running slot sums in the cache, which a crop cannot roll back: assisted generation
(which crops the cache to the accepted candidates) must fail with an error that says so. The old message
blamed "cropping/reordering", and reordering (beam search) is supported (`SteelForCausalLM._reorder_cache`)."""

from __future__ import annotations

import pytest
import torch

from steel.model import build_model


def test_assisted_generation_of_the_causal_moe_names_the_limitation(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="soft_moe_causal")).eval()
    ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7, 8, 5, 6]])
    with pytest.raises(RuntimeError, match=r"cannot continue a cropped cache \(assisted generation: "
                                           r"prompt_lookup_num_tokens, assistant_model\)") as err:
        model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0, prompt_lookup_num_tokens=3)
    assert "reordering" not in str(err.value) and "beam search is supported" in str(err.value)
    # and beam search, which reorders the cache, decodes as without the cache
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, num_beams=2)
    assert torch.equal(model.generate(ids, **kw), model.generate(ids, use_cache=False, **kw))
