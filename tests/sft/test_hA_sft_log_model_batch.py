"""`steel sft`'s train.log states the model's size and the global batch, as `steel train`'s does (it said neither:
an SFT run's log did not show how many rows a step trains, which grows with the number of processes)."""

from __future__ import annotations

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_sft_log_has_the_model_and_global_batch_lines(tmp_path, tiny_tokenizer_dir):
    from steel.infer.load import load_model
    from steel.model.flops import flops_per_token

    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1, extra="grad_accum: 3\n")  # micro_batch 2, seq 64
    assert steel(["sft", str(config)]) == 0
    lines = (tmp_path / "run" / "train.log").read_text(encoding="utf-8").splitlines()
    init = load_model(tmp_path / "init")
    params = sum(p.numel() for p in init.parameters())
    fpt = flops_per_token(init.config, 64)["true"]
    model = [x for x in lines if " model: " in x]
    assert len(model) == 1 and model[0].endswith(
        f"model: SteelForCausalLM, {params / 1e6:.1f}M parameters, {fpt:.3g} training FLOPs/token"), model
    batch = [x for x in lines if "global batch:" in x]
    # 2 rows x 3 micro-batches x 1 process = 6 rows of 64 positions per step
    assert len(batch) == 1 and batch[0].endswith(
        "global batch: 6 samples x 64 tokens = 384 tokens per step (micro_batch 2 x grad_accum 3 x 1 process); "
        "max_steps 1: 384 tokens"), batch
