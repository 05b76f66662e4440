"""The annealing switch and config changes at resume: honoured exactly, or refused at startup naming the field."""

import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import losses, make_data_dir, tiny_config

from steel.cli import main as steel
from steel.config import load_config
from steel.train.config import OptimSection, TrainConfig
from steel.train.optim import lr_at
from steel.train.trainer import main, setup


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def loss_tensor(run):
    return torch.tensor([x for _, x in losses(run)], dtype=torch.float64)


def weights(run, step):
    return load_file(run / "checkpoints" / f"step-{step}" / "model.safetensors")


def same_weights(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_anneal_replace_draws_again_from_data_already_in_the_run(tmp_path, data):
    # anneal.dirs listing a dir of data.dirs used to switch the run to 0 samples at the anneal step
    # ("one global micro-batch (4 samples) exceeds an epoch (0 samples)" after hours of training).
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(data)], "mode": "replace"},
                      optim={"schedule": "wsd", "decay_steps": 4})
    trainer = main(setup(str(cfg)))
    ld, first = trainer.data, trainer.data.total  # the annealing ids start after the registry
    seen, windows = {}, {}
    orig = ld.next_batch

    def spy():
        b = orig()
        seen.setdefault(trainer.state.step, []).extend(ld.last_ids.tolist())
        windows.setdefault(trainer.state.step, []).append(b["input_ids"])
        return b

    ld.next_batch = spy
    trainer.train()
    trainer.metrics.close()
    assert all(i < first for s in range(6) for i in seen[s])
    after = [i for s in range(6, 10) for i in seen[s]]
    assert all(first <= i < 2 * first for i in after) and len(set(after)) == len(after)  # no sample twice
    # The second registration reads the same windows as the first: id first + v is sample v again.
    assert torch.equal(torch.cat(windows[7]), torch.from_numpy(ld.read_samples(torch.tensor(seen[7]).numpy() - first)[:, :-1]))
    run = tmp_path / "run"
    full, final = loss_tensor(run), weights(run, 10)
    for keep in (4, 8):  # resume before the switch, and after it (a registry holding chunks twice)
        for n in (8, 10):
            if n > keep:
                shutil.rmtree(run / "checkpoints" / f"step-{n}", ignore_errors=True)
        assert steel(["train", str(cfg)]) == 0
        assert torch.equal(loss_tensor(run), full) and same_weights(weights(run, 10), final)


def test_anneal_mix_of_data_already_in_the_run_refused_at_startup(tmp_path, data, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(copy)], "mode": "mix"})
    assert steel(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert (f"anneal.dirs: {copy / 'chunk-00000.bin'} is already in the run as {data / 'chunk-00000.bin'} "
            f"(data dir {data}); anneal.mode mix would add its samples a second time") in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before step 1, not at step 6


def test_missing_anneal_dir_refused_at_startup(tmp_path, data, capsys):
    # Used to train to the anneal step and fail there.
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(tmp_path / "nope")]})
    assert steel(["train", str(cfg)]) == 2
    assert f"anneal.dirs: {tmp_path / 'nope' / 'manifest.json'}: cannot read manifest" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "config.yaml").exists()  # a refused config is no record of the run


def test_anneal_decided_at_resume_switches_there_exactly(tmp_path, data, capsys):
    # Pretrain, then decide later when to anneal: the resumed run is the uninterrupted one with the final config.
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    final = {"anneal": {"step": 6, "dirs": [str(hq)], "mode": "replace"}, "optim": {"schedule": "wsd", "decay_steps": 4}}
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert steel(["train", str(tiny_config(tmp_path / "a", [data], **final))]) == 0
    b = tiny_config(tmp_path / "b", [data], optim=final["optim"])  # no annealing
    assert steel(["train", str(b)]) == 0
    for n in (8, 10):
        shutil.rmtree(tmp_path / "b" / "run" / "checkpoints" / f"step-{n}")
    # The checkpoint at step 4 knows no annealing. A switch in the past cannot be honoured:
    assert steel(["train", str(b), "--set", "anneal.step=3", "--set", f"anneal.dirs=[{hq}]"]) == 2
    assert (f"anneal.step: 3 is before the checkpoint's step 4 ({tmp_path / 'b' / 'run' / 'checkpoints' / 'step-4'}) "
            f"and the switch has not happened; it cannot happen in the past: set anneal.step >= 4") in capsys.readouterr().err
    # One ahead is, and can still move while it is ahead (8, then 6 from the same checkpoint).
    assert steel(["train", str(b), "--set", "anneal.step=8", "--set", f"anneal.dirs=[{hq}]"]) == 0
    for n in (8, 10):
        shutil.rmtree(tmp_path / "b" / "run" / "checkpoints" / f"step-{n}")
    assert steel(["train", str(b), "--set", "anneal.step=6", "--set", f"anneal.dirs=[{hq}]"]) == 0
    ra, rb = tmp_path / "a" / "run", tmp_path / "b" / "run"
    assert torch.equal(loss_tensor(ra), loss_tensor(rb)) and same_weights(weights(ra, 10), weights(rb, 10))


@pytest.mark.parametrize("change,message", [
    ("anneal.step=5", "anneal.step: 5 configured, but the annealing switch already happened with step 2"),
    ("anneal.step=null", "anneal.step: None configured, but the annealing switch already happened with step 2"),
    ("anneal.mode=mix", "anneal.mode: 'mix' configured, but the annealing switch already happened with mode 'replace'"),
    ("anneal.dirs=[OTHER]", "anneal.dirs: OTHER configured, but the annealing switch already happened with HQ"),
])
def test_anneal_changed_after_its_switch_refused(tmp_path, data, capsys, change, message):
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    other = make_data_dir(tmp_path / "other", [1500], seed=8, source="hq", prefix="other")
    cfg = tiny_config(tmp_path, [data], max_steps=4, anneal={"step": 2, "dirs": [str(hq)]})
    assert steel(["train", str(cfg)]) == 0
    capsys.readouterr()
    change, message = (x.replace("OTHER", str(other)).replace("HQ", str(hq)) for x in (change, message))
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", change]) == 2
    assert message + f" (checkpoint {tmp_path / 'run' / 'checkpoints' / 'step-4'})" in capsys.readouterr().err


def test_anneal_dir_moved_after_its_switch_resumes(tmp_path, data):
    # Chunks are known by content: a moved annealing dir is the same annealing data.
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    cfg = tiny_config(tmp_path, [data], max_steps=4, anneal={"step": 2, "dirs": [str(hq)]})
    assert steel(["train", str(cfg)]) == 0
    hq.rename(tmp_path / "hq-moved")
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", f"anneal.dirs=[{tmp_path / 'hq-moved'}]"]) == 0


@pytest.mark.parametrize("change,message", [
    ("data.seed=12", "data.seed: 11 in the checkpoint CKPT, 12 configured; the shuffle order of a run cannot "
                     "change mid-run: set data.seed: 11 again, or start a new run (another run_dir)"),
    ("data.seq_len=8", "data.seq_len: 16 in the checkpoint CKPT, 8 configured"),
    ("data.weights={web: 2.0}", "data.weights.web: weight 2 configured, but the run registered"),
])
def test_data_change_at_resume_refused(tmp_path, data, capsys, change, message):
    # data.seed and data.weights used to be ignored silently (the checkpoint's order and counts won).
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", change]) == 2
    assert message.replace("CKPT", str(tmp_path / "run" / "checkpoints" / "step-4")) in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "step-4").is_dir() and not (tmp_path / "run" / "checkpoints" / "step-6").exists()


def test_refused_resume_keeps_the_run_config(tmp_path, data, capsys):
    # RUN_DIR/config.yaml used to be overwritten before the checks: a refused resume left the refused
    # config as the run's record.
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    before = (run / "config.yaml").read_text()
    assert before == (run / "checkpoints" / "step-4" / "config.yaml").read_text()
    for change, field in [("data.seed=12", "data.seed: 11 in the checkpoint"), ("data.seq_len=8", "data.seq_len: 16 in"),
                          ("data.weights={web: 2.0}", "data.weights.web: weight 2 configured")]:
        assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", change]) == 2
        assert field in capsys.readouterr().err
        assert (run / "config.yaml").read_text() == before
    assert steel(["train", str(cfg), "--set", "max_steps=6"]) == 0  # an accepted resume records its config
    after = (run / "config.yaml").read_text()
    assert after == (run / "checkpoints" / "step-6" / "config.yaml").read_text() and after != before
    assert load_config(TrainConfig, run / "config.yaml").max_steps == 6


def test_optimizer_settings_changed_at_resume_are_used(tmp_path, data):
    # The checkpoint's param groups used to override a changed weight_decay/betas/eps silently.
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    trainer = main(setup(str(cfg), ["max_steps=6", "optim.weight_decay=0.5", "optim.betas=[0.8, 0.9]", "optim.eps=0.000001"]))
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 0.5 and no_decay["weight_decay"] == 0.0
    assert all(tuple(g["betas"]) == (0.8, 0.9) and g["eps"] == 1e-6 for g in (decay, no_decay))
    trainer.metrics.close()
    # said as a warning, once per field (it was an INFO line per param group)
    lines = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "resume: optim." in x]
    assert len(lines) == 3 and all(" WARNING " in x for x in lines)
    assert any("resume: optim.betas (0.9, 0.95) in the checkpoint, (0.8, 0.9) configured" in x for x in lines)


def test_resume_warnings_say_only_what_changes(tmp_path, data):
    # parallel.dtype auto -> fp32 on a CPU changes nothing (auto is fp32 there): it warned all the same.
    # max_steps below the checkpoint's step trained nothing without a word.
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    assert steel(["train", str(cfg), "--set", "parallel.dtype=fp32", "--set", "max_steps=3"]) == 0
    text = (tmp_path / "run" / "train.log").read_text()
    assert "resume: parallel.dtype" not in text
    ck = tmp_path / "run" / "checkpoints" / "step-4"
    assert f"resume: max_steps 3 is below the checkpoint's step 4 ({ck}): nothing is trained" in text


def test_adamw_implementation_follows_the_device_at_resume(tmp_path, data):
    """optimizer.json carries the saving machine's `fused`: a run started on a CPU went on with the unfused
    AdamW on GPUs, and this one (saved "on a CPU" before CPU AdamW was fused) would run torch's CPU default,
    a per-tensor for-loop. The step count stays where the chosen implementation reads it, and the run
    continues exactly as the uninterrupted one."""
    import json

    cfg = tiny_config(tmp_path, [data], max_steps=8)
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    full = losses(run)
    shutil.rmtree(run / "checkpoints" / "step-8")
    groups = run / "checkpoints" / "step-4" / "optimizer.json"
    saved = json.loads(groups.read_text())
    groups.write_text(json.dumps([{**g, "fused": None} for g in saved]))
    trainer = main(setup(str(cfg)))
    assert [g["fused"] for g in trainer.optimizer.param_groups] == [True, True]
    assert all(st["step"].device.type == "cpu" for st in trainer.optimizer.state.values())
    trainer.train()
    trainer.metrics.close()
    assert losses(run) == full


def test_honoured_changes_at_resume_are_logged(tmp_path, data):
    # A longer cosine run, another batch and a rope_theta used to resume without a word.
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    assert steel(["train", str(cfg), "--set", "max_steps=8", "--set", "micro_batch=2",
                  "--set", "model.overrides={rope_theta: 500.0}", "--set", "parallel.dtype=bf16"]) == 0
    text = (tmp_path / "run" / "train.log").read_text()
    ck = tmp_path / "run" / "checkpoints" / "step-4"
    lr_was, lr_now = lr_at(4, OptimSection(lr=1e-2, min_lr=1e-3, warmup_steps=2), 4), lr_at(4, OptimSection(lr=1e-2, min_lr=1e-3, warmup_steps=2), 8)
    assert (f"resume: max_steps/optim changed since {ck}: the learning rate of step 5 is now {lr_now:.4g} "
            f"(was {lr_was:.4g})") in text
    assert f"resume: global batch 4 samples (micro_batch x grad_accum x world size), was 8 in {ck}" in text
    assert (f"resume: parallel.dtype bf16, was auto in {ck}; the fp32 weights and optimizer state load as saved, "
            f"the forward and backward passes now run in torch.bfloat16") in text
    line = next(x for x in text.splitlines() if "resume: model config differs" in x)
    # transformers 5 keeps rope_theta inside rope_parameters
    assert f"resume: model config differs from {ck / 'model_config.json'} in rope_" in line and "500.0" in line
    assert "id2label" not in line  # a JSON round trip (int keys -> str) is no change


def test_anneal_switch_of_an_older_checkpoint_is_read_from_its_config(tmp_path, data, capsys):
    # Checkpoints written before train_state.json recorded the switch: their config.yaml says what it was.
    import json

    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    cfg = tiny_config(tmp_path, [data], max_steps=4, anneal={"step": 2, "dirs": [str(hq)]})
    assert steel(["train", str(cfg)]) == 0
    ts = tmp_path / "run" / "checkpoints" / "step-4" / "train_state.json"
    state = json.loads(ts.read_text())
    assert state.pop("anneal")["step"] == 2
    ts.write_text(json.dumps(state))
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", "anneal.step=3"]) == 2
    assert "anneal.step: 3 configured, but the annealing switch already happened with step 2" in capsys.readouterr().err
    assert steel(["train", str(cfg), "--set", "max_steps=6"]) == 0


def test_data_dirs_in_another_order_resume_exactly(tmp_path, data):
    # Chunks are registered by content in the checkpoint: the order of data.dirs does not matter at a resume.
    more = make_data_dir(tmp_path / "more", [2000], seed=9, prefix="more")
    cfg = tiny_config(tmp_path, [data, more], max_steps=8)
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    full, final = loss_tensor(run), weights(run, 8)
    shutil.rmtree(run / "checkpoints" / "step-8")
    assert steel(["train", str(cfg), "--set", f"data.dirs=[{more}, {data}]"]) == 0
    assert torch.equal(loss_tensor(run), full) and same_weights(weights(run, 8), final)


def test_anneal_dir_without_samples_refused_at_startup(tmp_path, data, capsys):
    # Two anneal dirs whose total has enough samples, but one of them gives none (its chunk is shorter than
    # seq_len + 1 = 17 tokens): each dir is checked at startup, not only their sum.
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    tiny = make_data_dir(tmp_path / "tiny", [12], seed=8, source="tiny", prefix="tiny")
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(hq), str(tiny)], "mode": "replace"})
    assert steel(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"anneal.dirs: no sample of seq_len + 1 = 17 tokens in data dir(s) {tiny} (1 chunks, 12 tokens" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("weight", [None, 2.0])
def test_resume_after_an_anneal_switch_to_copies_of_run_data(tmp_path, capsys, weight):
    # mode replace may re-use data of the run. An anneal dir of copies (same MD5, other path) made every
    # resume after the switch fail with "duplicate chunk" in the weight check (one combined scan); the same
    # chunks prepared again under another manifest weight (weight 2) then failed with "weight 1 configured
    # ... under another weight" (one weight kept per chunk).
    data = make_data_dir(tmp_path / "data", [3000, 2000, 2500])
    hq = tmp_path / "hq"
    if weight is None:
        shutil.copytree(data, hq)
    else:
        make_data_dir(hq, [3000, 2000, 2500], weight=weight)  # byte-identical chunks, another manifest weight
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(hq)], "mode": "replace"},
                      optim={"schedule": "wsd", "decay_steps": 4})
    assert steel(["train", str(cfg)]) == 0
    full = losses(tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-10")
    assert steel(["train", str(cfg)]) == 0, capsys.readouterr().err[-400:]
    assert losses(tmp_path / "run") == full  # and the resume is exact
