"""`torch.compile(model)` on a whole Steel model (not per layer, as `parallelize` does) with soft_moe_causal's
per-document layout: the layout is built inside the compiled forward, after the graph break at its group
count. `torch._dynamo.maybe_mark_dynamic` (which makes the group count a symbol for per-layer compiles) is a
forbidden callable under dynamo: tracing it raised, so the whole-model compile README promises crashed at the
first forward with documents (document_mask) or a left-padded batch."""

from __future__ import annotations

import pytest
import torch

from steel.model import build_model, load_model_config

EOS = 0  # tiny.yaml's eos_token_id


def _ids(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 512, (2, 18), generator=g)
    return ids.masked_fill(torch.rand((2, 18), generator=g) < 0.15, EOS)


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
@pytest.mark.parametrize("document_mask", [True, False], ids=["documents", "left-padding"])
def test_whole_model_compile_with_a_document_layout(document_mask):
    cfg = load_model_config("tiny", ["ffn_type=soft_moe_causal", "moe_chunk_size=3",
                                     f"document_mask={str(document_mask).lower()}"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    for seed in range(2):  # a second batch: other documents, another group count
        ids = _ids(seed)
        mask = torch.ones_like(ids)
        if not document_mask:
            mask[0, :4] = 0  # a left-padded row: the per-row chunk grid goes through document_layout too
        kw = dict(input_ids=ids, attention_mask=mask, use_cache=False)
        with torch.no_grad():
            want, got = model(**kw).logits, compiled(**kw).logits
        torch.testing.assert_close(got, want, rtol=0, atol=0)  # aot_eager runs the same aten ops
