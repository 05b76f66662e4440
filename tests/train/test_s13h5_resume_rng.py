"""An exact resume of a run that draws random numbers (dropout): the checkpoint's RNG state is restored.

A mutation audit (session 13) skipped `torch.set_rng_state` at load and the suite stayed green: no test model
draws random numbers while training (dropout 0), so the saved RNG state was never needed. A model config
with `attention_dropout` does draw them, and its resume must still be bit-identical.
"""

from __future__ import annotations

import math
import shutil

from train_fixtures import VOCAB, losses, make_data_dir, tiny_config

from steel.train.trainer import main, setup


def test_resume_with_dropout_is_bit_identical(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000])
    model = {"config": {
        "model_type": "llama", "vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "tie_word_embeddings": False, "attention_dropout": 0.5,
    }}
    cfg = tiny_config(tmp_path, [data], max_steps=6, checkpoint={"every": 3, "keep": 10}, model=model)
    run = tmp_path / "run"

    def train():
        trainer = main(setup(str(cfg)))
        assert trainer.model.training and trainer.model.config.attention_dropout == 0.5
        trainer.train()
        trainer.metrics.close()

    train()
    full = losses(run)
    assert [s for s, _ in full] == list(range(1, 7)) and all(math.isfinite(x) for _, x in full)
    shutil.rmtree(run / "checkpoints" / "step-6")  # lose the last 3 steps, as a crash would
    train()  # resumes from step 3 in this process, whose RNG has moved on since that save
    assert losses(run) == full  # bit-identical, not approximately equal
