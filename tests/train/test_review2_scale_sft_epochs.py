"""configs/sft/steel-sft.yaml trains a sensible number of epochs of its own data.

Its mixture, on the shared data, packs into 636 rows of 2048 tokens (14,189 conversations). With max_steps 2000,
micro_batch 8 and grad_accum 4 the README's command (`steel sft configs/sft/steel-sft.yaml --set init=...`, one
process) went through that data ~100 times (~800 times on 8 GPUs), with a 50-step warmup in front: a recipe that
memorises its SFT set. Steel-LLM's own SFT (LLaMA-Factory, `finetune/steel_run_sft.sh`) ran 5 epochs.
"""

from pathlib import Path

from transformers import AutoTokenizer

from steel.sft.data import build_sft_rows
from steel.sft.train import setup

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sft" / "steel-sft.yaml"


def test_steel_sft_runs_a_few_epochs_of_its_mixture(qwen_tokenizer_dir):
    cfg = setup(str(CONFIG))  # data.root resolved as `steel sft` does (the checkout's sibling shared/data)
    assert Path(cfg.data.root).is_dir(), f"shared data not found at {cfg.data.root}"
    rows, _ = build_sft_rows(cfg.data, AutoTokenizer.from_pretrained(qwen_tokenizer_dir), {})
    world = 1  # the README's command: one process
    epochs = cfg.max_steps * cfg.micro_batch * cfg.grad_accum * world / rows.shape[0]
    assert 1 <= epochs <= 5, f"{epochs:.1f} epochs of {rows.shape[0]} rows"
    assert cfg.optim.warmup_steps <= cfg.max_steps // 5  # a warmup, not a fifth of the run or more
    assert cfg.checkpoint.every <= cfg.max_steps // 2  # a checkpoint before the end
