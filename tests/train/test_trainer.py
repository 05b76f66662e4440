import json
import math
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import EOS, VOCAB, losses, make_data_dir, tiny_config

from steel.cli import main as steel
from steel.config import ConfigError
from steel.train import checkpoint as ckpt
from steel.train.config import OptimSection
from steel.train.optim import lr_at
from steel.train.trainer import NonFiniteError, main, setup


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def weights(ckpt_dir):
    return load_file(ckpt_dir / "model.safetensors")


def test_resume_is_bit_identical(tmp_path, data):
    cfg = tiny_config(tmp_path, [data])
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    full, final = losses(run), weights(run / "checkpoints" / "step-10")
    assert [s for s, _ in full] == list(range(1, 11))
    assert all(math.isfinite(x) for _, x in full) and full[-1][1] < full[0][1]  # it learns
    # Lose everything after step 4 (as a crash would) and run the same command again.
    for n in (8, 10):
        shutil.rmtree(run / "checkpoints" / f"step-{n}")
    assert steel(["train", str(cfg)]) == 0
    assert losses(run) == full  # bit-identical, not approximately equal
    again = weights(run / "checkpoints" / "step-10")
    assert all(torch.equal(final[k], again[k]) for k in final)
    data_state = json.loads((run / "checkpoints" / "step-10" / "data.json").read_text())
    assert data_state["consumed"] == 10 * 4 * 2 and len(data_state["segments"]) == 1


def test_checkpoint_contents_reload_into_a_plain_hf_model(tmp_path, data):
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    latest = ckpt.latest_checkpoint(run)
    assert latest.name == "step-4"
    assert {p.name for p in latest.iterdir()} >= {"model.safetensors", "optimizer.safetensors", "optimizer.json",
                                                  "scheduler.json", "data.json", "train_state.json", "rng",
                                                  "config.yaml", "model_config.json"}
    sd = ckpt.load_model_state(latest)
    hf = AutoModelForCausalLM.from_config(LlamaConfig(**json.loads((latest / "model_config.json").read_text())))
    assert set(sd) == set(hf.state_dict())  # HF parameter names, nothing missing or extra
    hf.load_state_dict(sd)
    trainer = main(setup(str(cfg), ["max_steps=5"]))  # resumes from step 4
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in sd.items())
    trainer.metrics.close()


def test_partial_save_is_never_loaded(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    root = tmp_path / "run" / "checkpoints"
    # A crash mid-save leaves step-N.tmp; a directory without train_state.json is not complete either.
    shutil.copytree(root / "step-4", root / "step-8.tmp")
    shutil.copytree(root / "step-4", root / "step-12")
    (root / "step-12" / "train_state.json").unlink()
    assert ckpt.latest_checkpoint(tmp_path / "run") == root / "step-4"
    trainer = main(setup(str(cfg)))
    assert trainer.state.step == 4 and not (root / "step-8.tmp").exists()
    trainer.metrics.close()


def test_a_kill_in_a_resave_or_a_cleanup_loses_no_checkpoint(tmp_path, data, monkeypatch):
    cfg = tiny_config(tmp_path, [data], max_steps=4, checkpoint={"every": 2, "keep": 2})
    assert steel(["train", str(cfg)]) == 0
    root = tmp_path / "run" / "checkpoints"
    saved = weights(root / "step-4")
    trainer = main(setup(str(cfg)))  # at step 4: nothing to train
    # A re-save of step 4 killed between setting the old one aside and renaming the new one in.
    real_replace = os.replace

    def killed(src, dst):
        if str(src).endswith("step-4.tmp"):
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    monkeypatch.setattr(os, "replace", real_replace)
    trainer.metrics.close()
    assert not (root / "step-4").exists() and (root / "step-4.old").is_dir() and (root / "step-4.tmp").is_dir()
    # A cleanup killed mid-delete: step-2 set aside, half its files gone, train_state.json still there.
    real_replace(root / "step-2", root / "step-2.del")
    (root / "step-2.del" / "model.safetensors").unlink()
    trainer = main(setup(str(cfg)))
    assert trainer.state.step == 4
    assert sorted(p.name for p in root.iterdir()) == ["step-4"]  # step-4 put back; the rest deleted
    assert all(torch.equal(v, weights(root / "step-4")[k]) for k, v in saved.items())
    trainer.metrics.close()
    # A half-deleted old checkpoint is never put back, even with no newer one left (removed by hand).
    shutil.rmtree(root / "step-4")
    (root / "step-2.del").mkdir()
    (root / "step-2.del" / "train_state.json").write_text("{}")
    ckpt.remove_partial(tmp_path / "run")
    assert list(root.iterdir()) == [] and ckpt.latest_checkpoint(tmp_path / "run") is None


def test_keep_last_k(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=10, checkpoint={"every": 2, "keep": 2})
    assert steel(["train", str(cfg)]) == 0
    assert [p.name for _, p in ckpt.list_checkpoints(tmp_path / "run")] == ["step-8", "step-10"]


def test_sigterm_saves_and_stops(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], checkpoint={"every": 100})
    trainer = main(setup(str(cfg)))
    anneal = trainer.on_step
    trainer.on_step = lambda step: (anneal(step), step == 3 and os.kill(os.getpid(), signal.SIGTERM))
    assert trainer.train() == "SIGTERM"
    assert trainer.state.step == 4 and ckpt.latest_checkpoint(tmp_path / "run").name == "step-4"
    trainer.metrics.close()


def test_time_limit_saves_and_stops(tmp_path, data, monkeypatch):
    """checkpoint.stop_after_minutes: the process's age stops the run with a checkpoint, for a job with a
    time limit (a save after SIGTERM under torchrun has 30 s before its SIGKILL)."""
    import steel.train.trainer as T

    clock = [0.0]  # seconds since the process started
    monkeypatch.setattr(T, "process_seconds", lambda: clock[0])
    cfg = tiny_config(tmp_path, [data], checkpoint={"every": 100, "stop_after_minutes": 1.5})
    trainer = main(setup(str(cfg)))
    anneal = trainer.on_step

    def tick(step):
        anneal(step)
        clock[0] += 20.0  # 20 s per step: 90 s have passed after step 5

    trainer.on_step = tick
    assert trainer.train() == "time limit"
    assert trainer.state.step == 5 and ckpt.latest_checkpoint(tmp_path / "run").name == "step-5"
    trainer.metrics.close()
    # Reached on the last step, the run is done (it said "time limit", and a rerun loop went once more).
    trainer = main(setup(str(cfg), ["max_steps=6"]))
    assert trainer.train() == "done" and trainer.state.step == 6
    trainer.metrics.close()
    with pytest.raises(ConfigError, match=r"checkpoint.stop_after_minutes: must be >= 0"):
        setup(str(cfg), ["checkpoint.stop_after_minutes=-1"])
    with pytest.raises(ConfigError, match=r"parallel.timeout_minutes: must be > 0"):
        setup(str(cfg), ["parallel.timeout_minutes=0"])
    with pytest.raises(ConfigError, match=r"parallel.timeout_minutes: must be > 0 and at most a week"):
        setup(str(cfg), ["parallel.timeout_minutes=1e13"])  # an OverflowError traceback in init_process_group


def test_process_seconds_counts_from_the_process_start():
    """stop_after_minutes counts what a job's time limit counts: here a second spent before the import."""
    import subprocess
    import sys

    code = "import time; time.sleep(1.0); from steel.train.trainer import process_seconds; print(process_seconds())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert 1.0 <= float(out.stdout) < 100


def test_process_seconds_is_never_below_the_time_since_import(monkeypatch):
    """A container whose /proc/uptime is its own but whose start ticks count from the host's boot gave a
    negative age, and stop_after_minutes never fired."""
    import time

    import steel.train.trainer as T

    monkeypatch.setattr(T.os, "sysconf", lambda name: 1e-6)  # start ticks now look a million times later
    since_import = time.monotonic() - T._IMPORTED
    assert T.process_seconds() >= since_import > 0


def _poison(trainer, bad_steps):
    """Make the logits NaN on the given steps (a forward hook), as an overflow would."""
    def hook(module, args, out):
        if trainer.state.step in bad_steps:
            out.logits = out.logits * float("nan")
        return out

    trainer.model.register_forward_hook(hook)


def test_nonfinite_step_is_skipped_and_counted(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=6)
    trainer = main(setup(str(cfg)))
    _poison(trainer, {2})
    before = {}
    trainer.on_step = lambda step: before.__setitem__(step, {k: v.clone() for k, v in trainer.model.state_dict().items()})
    trainer.train()
    # the warning numbers the step as metrics.jsonl does (it said "step 2" for the record of step 3)
    warned = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "non-finite loss" in x]
    assert len(warned) == 1 and "step 3: non-finite loss" in warned[0]
    assert trainer.state.skipped == 1 and trainer.state.nonfinite_run == 0
    after3 = before[3]
    assert all(torch.equal(before[2][k], after3[k]) for k in after3)  # step 2 left the weights alone
    assert not all(torch.equal(before[1][k], before[2][k]) for k in after3)  # other steps do update
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[2]["loss"] is None and rec[2]["step"] == 3 and rec[-1]["skipped"] == 1  # non-finite: null
    trainer.metrics.close()


def test_nonfinite_in_a_row_stops_the_run(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=20, max_nonfinite=3)
    trainer = main(setup(str(cfg)))
    _poison(trainer, set(range(5, 20)))
    with pytest.raises(NonFiniteError, match="3 consecutive steps"):
        trainer.train()
    assert trainer.state.step == 8
    trainer.metrics.close()


def test_hf_labels_give_the_hf_loss(tmp_path, data):
    """A data object in HF `labels` convention (the SFT shape): the trainer's loss equals the HF model's own."""
    cfg = tiny_config(tmp_path, [data], max_steps=1, grad_accum=1)
    trainer = main(setup(str(cfg)))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 256, (4, 16), generator=g)
    labels = ids.clone()
    labels[:, :5] = -100  # a prompt that is not trained on
    labels[1, 9:] = -100

    class Fixed:
        def next_batch(self):
            return {"input_ids": ids, "labels": labels}

        def state_dict(self):
            return {}

    trainer.data = Fixed()
    with torch.no_grad():
        ref = trainer.model(input_ids=ids, labels=labels).loss.item()
    loss, _, count = trainer.train_step()
    # Same fp32 math, different reduction order (sum then divide vs mean): 1e-6 relative.
    assert loss == pytest.approx(ref, rel=1e-6)
    assert count == int((labels[:, 1:] != -100).sum())
    trainer.metrics.close()


def test_lr_schedules_by_hand():
    c = OptimSection(lr=1.0, min_lr=0.1, warmup_steps=10, schedule="cosine")
    assert lr_at(0, c, 110) == pytest.approx(0.1)
    assert lr_at(9, c, 110) == pytest.approx(1.0)
    assert lr_at(60, c, 110) == pytest.approx(0.55)  # half way: min + (max - min) / 2
    assert lr_at(110, c, 110) == pytest.approx(0.1)
    w = OptimSection(lr=1.0, min_lr=0.0, warmup_steps=10, schedule="wsd", decay_steps=20)
    assert lr_at(50, w, 100) == 1.0 and lr_at(79, w, 100) == 1.0
    assert lr_at(89, w, 100) == pytest.approx(0.5) and lr_at(99, w, 100) == pytest.approx(0.0)


def test_anneal_switches_the_mixture_and_resumes(tmp_path, data):
    hq = make_data_dir(tmp_path / "hq", [1500], seed=7, source="hq", prefix="hq")
    cfg = tiny_config(tmp_path, [data], anneal={"step": 6, "dirs": [str(hq)], "mode": "replace"},
                      optim={"schedule": "wsd", "decay_steps": 4})
    trainer = main(setup(str(cfg)))
    seen = {}
    ld = trainer.data
    first_hq = ld.total  # ids of the annealing chunks start here
    orig = ld.next_batch
    ld.next_batch = lambda: (orig(), seen.setdefault(trainer.state.step, []).extend(ld.last_ids.tolist()))[0]
    trainer.train()
    assert all(i < first_hq for s in range(6) for i in seen[s])
    assert all(i >= first_hq for s in range(6, 10) for i in seen[s])
    trainer.metrics.close()
    full = losses(tmp_path / "run")
    for n in (8, 10):  # resume from step 4, before the switch at 6
        shutil.rmtree(tmp_path / "run" / "checkpoints" / f"step-{n}")
    assert steel(["train", str(cfg)]) == 0
    assert losses(tmp_path / "run") == full


def test_add_data_at_resume(tmp_path, data):
    more = make_data_dir(tmp_path / "more", [2000], seed=9, prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=8)
    assert steel(["train", str(cfg), "--set", "max_steps=4"]) == 0
    assert steel(["train", str(cfg), "--add-data", str(more)]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-8" / "data.json").read_text())
    assert len(state["segments"]) == 2 and len(state["chunks"]) == 4 and state["extra_dirs"] == [str(more)]
    # Repeating --add-data with the same dir at a later resume is not a duplicate.
    assert steel(["train", str(cfg), "--set", "max_steps=9", "--add-data", str(more)]) == 0


def test_same_dir_twice_is_not_a_duplicate(tmp_path, data):
    # Used to fail: "duplicate chunk: X has the same head/tail MD5 as X" (the file against itself).
    cfg = tiny_config(tmp_path, [data, data], max_steps=2)
    assert steel(["train", str(cfg), "--add-data", str(data)]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-2" / "data.json").read_text())
    assert len(state["chunks"]) == len(json.loads((data / "manifest.json").read_text())["chunks"])


def test_add_data_at_the_start_resumes(tmp_path, data):
    # The same command run again resumes, with or without repeating --add-data (it used to fail:
    # "registered in this run is in none of the data dirs").
    more = make_data_dir(tmp_path / "more", [2000], seed=9, prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg), "--add-data", str(more)]) == 0
    assert steel(["train", str(cfg), "--set", "max_steps=8", "--add-data", str(more)]) == 0
    assert steel(["train", str(cfg), "--set", "max_steps=12"]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-12" / "data.json").read_text())
    assert len(state["chunks"]) == 4 and len(state["segments"]) == 1 and state["extra_dirs"] == [str(more)]


def test_appended_data_weight_change_moved_dir_and_relative_path(tmp_path, data, monkeypatch, capsys):
    more = make_data_dir(tmp_path / "more", [2000], seed=9, source="more", prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    assert steel(["train", str(cfg), "--add-data", "more"]) == 0  # relative, from tmp_path
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-2" / "data.json").read_text())
    assert state["extra_dirs"] == [str(more.resolve())]  # stored absolute: it was 'more'
    monkeypatch.chdir(tmp_path / "elsewhere")  # a resume from another cwd used to lose 'more'
    assert steel(["train", str(cfg), "--set", "max_steps=3"]) == 0
    # A weight given for a source appended with --add-data was ignored without a word.
    assert steel(["train", str(cfg), "--set", "max_steps=4", "--set", "data.weights={more: 3.0}"]) == 2
    assert "data.weights.more: weight 3 configured, but the run registered" in capsys.readouterr().err
    # Appended data moved: given again at its new place, the run resumes (chunks are found by MD5).
    shutil.move(str(more), str(tmp_path / "moved"))
    assert steel(["train", str(cfg), "--set", "max_steps=4"]) == 2
    assert "(moved? list its directory in data.dirs or pass it with --add-data)" in capsys.readouterr().err
    assert steel(["train", str(cfg), "--set", "max_steps=4", "--add-data", str(tmp_path / "moved")]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-4" / "data.json").read_text())
    assert len(state["chunks"]) == 4 and len(state["segments"]) == 1  # nothing appended twice


def test_relative_add_data_passed_again_at_resume(tmp_path, data, monkeypatch):
    # The run stores appended dirs absolute; the same dir passed again relative was scanned twice at the
    # resume ("duplicate chunk"), although re-passing --add-data is documented as harmless.
    make_data_dir(tmp_path / "more", [2000], seed=9, source="more", prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    monkeypatch.chdir(tmp_path)
    assert steel(["train", str(cfg), "--add-data", "more"]) == 0
    assert steel(["train", str(cfg), "--set", "max_steps=3", "--add-data", "more"]) == 0
    assert steel(["train", str(cfg), "--set", "max_steps=4", "--add-data", "./more"]) == 0


def test_a_copy_of_an_appended_dir_is_refused_naming_the_copy(tmp_path, data, capsys):
    # The refusal is right (the same chunks twice), but it named the registered file as the duplicate of the copy.
    make_data_dir(tmp_path / "more", [2000], seed=9, source="more", prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--add-data", str(tmp_path / "more")]) == 0
    shutil.copytree(tmp_path / "more", tmp_path / "copy")
    assert steel(["train", str(cfg), "--set", "max_steps=3", "--add-data", str(tmp_path / "copy")]) == 2
    err = capsys.readouterr().err
    assert f"duplicate chunk: {tmp_path / 'copy'}/" in err and f"as {tmp_path / 'more'}/" in err
    assert "(a copy of a data dir? give only one of the two)" in err


def test_plot(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=3, log={"every": 1, "tensorboard": True, "progress": False})
    assert steel(["train", str(cfg)]) == 0
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert steel(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_after_a_crash_mid_line(tmp_path, capsys):
    # A run killed while writing metrics.jsonl leaves a cut last line: plot the complete records.
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5, "lr": 0.1}\n{"step": 2, "loss": 2.0, "lr": 0.1}\n{"step": 3, "lo')
    assert steel(["plot", str(run)]) == 0
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Garbage before the end is one error line naming file and line.
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.5, "lr": 0.1}\ngarbage\n{"step": 3, "loss": 2.0, "lr": 0.1}\n')
    assert steel(["plot", str(run)]) == 2
    assert f"{run / 'metrics.jsonl'}:2: not a JSON metrics record" in capsys.readouterr().err


def test_resume_with_another_model_is_one_error(tmp_path, data, capsys):
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    # A model config changed between runs used to end in a RuntimeError traceback from set_state_dict,
    # then in that error after building the whole model (and a warning that "the weights load").
    import steel.train.trainer as T

    built = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(T, "build_model", lambda c, real=T.build_model: built.append(torch.empty(0).device) or real(c))
    try:
        assert steel(["train", str(cfg), "--set", "max_steps=8", "--set", "model.config.hidden_size=64"]) == 2
    finally:
        monkey.undo()
    err = capsys.readouterr().err
    assert f"does not fit the checkpoint {tmp_path / 'run' / 'checkpoints' / 'step-4'} (changed: head_dim, hidden_size;" in err
    assert "Traceback" not in err and "the weights load" not in err
    assert built and all(dev.type == "meta" for dev in built)  # refused before a real model was built


def test_weights_must_name_a_source(tmp_path, data, capsys):
    # A typo in data.weights used to be ignored silently (the mixture stayed unweighted).
    more = make_data_dir(tmp_path / "more", [2000], seed=9, source="more", prefix="more")
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--set", "data.weights={nope: 2.0}"]) == 2
    assert "data.weights.nope: no source of that name in" in capsys.readouterr().err
    assert steel(["train", str(cfg), "--add-data", str(more), "--set", "data.weights={more: 2.0}"]) == 0
    # at a resume, a source of a dir added earlier is known
    assert steel(["train", str(cfg), "--set", "max_steps=4", "--set", "data.weights={more: 2.0}"]) == 0


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_parallel_mode_without_torchrun_runs_one_process(tmp_path, data, mode):
    # configs/train/steel-1b.yaml says mode: fsdp; without torchrun this used to fail for want of a
    # process group (DDP: "Default process group has not been initialized"; FSDP: "RANK expected").
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a = tiny_config(tmp_path / "a", [data], max_steps=3)
    b = tiny_config(tmp_path / "b", [data], max_steps=3, parallel={"mode": mode})
    assert steel(["train", str(a)]) == 0 and steel(["train", str(b)]) == 0
    assert losses(tmp_path / "a" / "run") == losses(tmp_path / "b" / "run")
    # ...and says so in the run log (it was logged before the log existed, so it never appeared)
    log_text = (tmp_path / "b" / "run" / "train.log").read_text()
    # not "(no torchrun)": `torchrun --nproc_per_node 1` (a 2-rank run resumed on one GPU) runs one process too
    assert f"parallel.mode: {mode} with one process: running unwrapped" in log_text


def test_bf16_saved_model_trains_with_fp32_master_weights(tmp_path, data):
    # A model config carrying dtype bfloat16 (as HF directories saved in bf16 do) built bf16 parameters,
    # and param_dtype: fp32 then trained them as pure bf16: plain AdamW on bf16 weights, no fp32 masters.
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    import yaml

    c = yaml.safe_load(cfg.read_text())
    c["model"]["config"]["torch_dtype"] = "bfloat16"
    cfg.write_text(yaml.safe_dump(c))
    trainer = main(setup(str(cfg)))
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    trainer.metrics.close()
    assert "model parameters in torch.bfloat16 cast to fp32" in (tmp_path / "run" / "train.log").read_text()


def test_bad_config_names_the_field(tmp_path, data, capsys):
    cfg = tiny_config(tmp_path, [data], micro_batch=0)
    assert steel(["train", str(cfg)]) == 2
    assert "micro_batch: must be >= 1" in capsys.readouterr().err


def test_bad_model_field_is_one_line_before_the_run_starts(tmp_path, data, capsys):
    # It came after ~55 lines of resolved-config log on stderr, with the run dir already created.
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--set", "model.config.num_attention_heads=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steel: error: model: invalid 'llama' config") and "attention heads (3)" in err[0]
    assert not (tmp_path / "run").exists()


def test_routed_moe_stock_config_is_one_error_line(tmp_path, data, capsys):
    # "routed-MoE stock configs are refused with a clear error" was a ValueError traceback (exit 1).
    mixtral = {"model_type": "mixtral", "vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4,
               "max_position_embeddings": 64}
    (tmp_path / "mixtral.yaml").write_text(json.dumps(mixtral))
    cfg = tiny_config(tmp_path, [data], max_steps=2, model={"config": str(tmp_path / "mixtral.yaml")})
    assert steel(["train", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model: flops: mixtral has num_local_experts=4" in err[0]
    assert steel(["model", "info", str(tmp_path / "mixtral.yaml")]) == 2
    assert "routed MoE FLOPs are not modelled" in capsys.readouterr().err


@pytest.mark.parametrize("override,message", [
    # AdamW's own ValueError tracebacks (betas, eps); NaN/inf lr; a negative decay trained silently
    ("optim.betas=[2,0.9]", "optim.betas: each must be in [0, 1), got [2.0, 0.9]"),
    ("optim.eps=0", "optim.eps: must be > 0"),
    ("optim.weight_decay=-1", "optim.weight_decay: must be >= 0"),
    ("optim.lr=.nan", "optim.lr: expected a finite number"),
    ("optim.lr=.inf", "optim.lr: expected a finite number"),
    ("run_dir=", "run_dir: must not be empty"),  # wrote the run into the current directory
])
def test_bad_optimizer_and_run_dir_are_one_error_line(tmp_path, data, capsys, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("field,value", [("checkpoint.every", 0), ("checkpoint.keep", 0), ("checkpoint.keep", -1),
                                         ("log.every", 0), ("optim.grad_clip", -1)])
def test_bad_counts_are_one_error_line(tmp_path, data, capsys, field, value):
    # every=0 used to crash with ZeroDivisionError mid-run; keep=-1 deleted the checkpoint just written.
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg), "--set", f"{field}={value}"]) == 2
    assert f"{field}: must be >= " in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


class CountingData:
    """A non-pretraining data source (the SFT shape): HF `labels` with masked prompts, a counter as state."""

    def __init__(self):
        self.i = 0

    def next_batch(self):
        g = torch.Generator().manual_seed(self.i)
        self.i += 1
        ids = torch.randint(1, 256, (4, 16), generator=g)
        labels = ids.clone()
        labels[:, : 3 + self.i % 5] = -100
        return {"input_ids": ids, "labels": labels}

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = state["i"]


def test_custom_data_source_trains_and_resumes(tmp_path):
    # `data:` may be empty with a custom source (README): its default seq_len 2048 is not the rows' length
    # and must not be checked against the model's 64 positions.
    cfg = setup(str(tiny_config(tmp_path, [], data={})), [])
    trainer = main(cfg, make_data=lambda cfg, d: CountingData())
    trainer.train()
    trainer.metrics.close()
    run = tmp_path / "run"
    full = losses(run)
    assert json.loads((run / "checkpoints" / "step-10" / "data.json").read_text()) == {"i": 20}
    for n in (8, 10):
        shutil.rmtree(run / "checkpoints" / f"step-{n}")
    trainer = main(cfg, make_data=lambda cfg, d: CountingData())
    assert trainer.data.i == 8  # 4 steps x 2 micro-batches restored from data.json
    trainer.train()
    trainer.metrics.close()
    assert losses(run) == full


def test_mfu_peak_table(monkeypatch):
    from steel.train.metrics import peak_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H800")
    assert peak_flops(torch.device("cuda", 0)) == (989.4e12, "NVIDIA H800")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert peak_flops(torch.device("cuda", 0))[0] == 989.4e12  # the MFU peak (SXM)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert peak_flops(torch.device("cuda", 0))[0] == 756e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_flops(torch.device("cuda", 0)) == (None, "Some Future GPU")  # unknown: said, not guessed
    assert peak_flops(torch.device("cpu")) == (None, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_run_logs_mfu(tmp_path, data):
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    rec = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rec)
    name = torch.cuda.get_device_name()
    from steel.train.metrics import PEAK_FLOPS

    if any(k in name for k, _ in PEAK_FLOPS):
        assert rec[-1]["mfu"] is not None and 0 < rec[-1]["mfu"] < 1


def test_activation_checkpointing_same_losses_and_names(tmp_path, data):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = tiny_config(tmp_path / "a", [data], max_steps=3)
    ac = tiny_config(tmp_path / "b", [data], max_steps=3, parallel={"activation_checkpointing": True})
    assert steel(["train", str(plain)]) == 0 and steel(["train", str(ac)]) == 0
    # Recomputing the forward in backward is the same arithmetic on CPU: identical losses and weights.
    assert losses(tmp_path / "a" / "run") == losses(tmp_path / "b" / "run")
    wa, wb = weights(tmp_path / "a" / "run" / "checkpoints" / "step-3"), weights(tmp_path / "b" / "run" / "checkpoints" / "step-3")
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_compile_matches_eager(tmp_path, data):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    eager = tiny_config(tmp_path / "a", [data], max_steps=3)
    compiled = tiny_config(tmp_path / "b", [data], max_steps=3, parallel={"compile": True})
    assert steel(["train", str(eager)]) == 0 and steel(["train", str(compiled)]) == 0
    for (sa, a), (sb, b) in zip(losses(tmp_path / "a" / "run"), losses(tmp_path / "b" / "run")):
        # Inductor fuses and reorders fp32 reductions: a few ulps per op, compounded over 3 steps.
        assert sa == sb and a == pytest.approx(b, rel=1e-5)
    wb = weights(tmp_path / "b" / "run" / "checkpoints" / "step-3")
    assert set(wb) == set(weights(tmp_path / "a" / "run" / "checkpoints" / "step-3"))  # no _orig_mod. prefixes


def test_model_vocab_smaller_than_data_refused(tmp_path, data, capsys):
    cfg = tiny_config(tmp_path, [data])
    assert steel(["train", str(cfg), "--set", "model.overrides.vocab_size=100"]) == 2
    assert "vocab_size 100 < the data tokenizer's 256" in capsys.readouterr().err


def _steel_tiny_config(tmp_path, data, name, kernels):
    (tmp_path / name).mkdir()
    return tiny_config(
        tmp_path / name, [data], max_steps=4,
        model={"config": {
            "model_type": "steel", "vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 64, "ffn_type": "senet", "eos_token_id": EOS, "kernels": kernels,
        }},
    )


def test_fused_cross_entropy_in_training_never_builds_logits(tmp_path, data, monkeypatch):
    """A Steel model with `kernels: {cross_entropy: fused}` trains through the chunked Triton linear+CE
    (run by Triton's interpreter on CPU): same losses as the logits path, and lm_head never runs."""
    from steel.kernels import dispatch

    if not dispatch.INTERPRET:
        pytest.skip("steel.kernels was imported without TRITON_INTERPRET=1; run with `make test`")
    plain = _steel_tiny_config(tmp_path, data, "plain", {})
    assert steel(["train", str(plain)]) == 0
    monkeypatch.setenv("STEEL_KERNELS_INTERPRET", "1")  # CPU tensors -> the Triton kernel, not the reference
    fused = _steel_tiny_config(tmp_path, data, "fused", {"cross_entropy": "fused"})
    calls = []
    t = main(setup(str(fused)))
    t.model.lm_head.register_forward_hook(lambda *a: calls.append(1))
    assert t.model_loss
    t.train()
    assert calls == []  # the (B, T, V) logits were never computed
    a, b = losses(tmp_path / "plain" / "run"), losses(tmp_path / "fused" / "run")
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4]
    # NOTE: the fused op sums the loss chunk by chunk in fp32 and its gradients go through another
    # summation order than autograd's; over 4 steps of a 2-layer fp32 model the drift stays ~1e-6.
    for (_, x), (_, y) in zip(a, b):
        assert x == pytest.approx(y, rel=1e-5)


def test_seq_len_beyond_the_models_positions_is_refused(tmp_path, data):
    # The fixture model has max_position_embeddings 64: rows of 65+ tokens would train positions the
    # model's config disowns (and generate/eval stop at 64), so this is refused before any step.
    from steel.config import ConfigError

    cfg = tiny_config(tmp_path, [data], data={"dirs": [str(data)], "seq_len": 65, "seed": 11})
    with pytest.raises(ConfigError, match=r"data.seq_len: 65 > the model's max_position_embeddings 64"):
        main(setup(str(cfg)))
    assert not (tmp_path / "run" / "checkpoints").exists()
    cfg = tiny_config(tmp_path, [data], max_steps=1, data={"dirs": [str(data)], "seq_len": 64, "seed": 11})
    assert steel(["train", str(cfg)]) == 0  # the limit itself is fine


def test_damaged_or_unwritable_checkpoint_is_one_error_line(tmp_path, data, capsys, monkeypatch):
    # A torn model.safetensors (or a full disk while saving) was a SafetensorError traceback.
    from safetensors import SafetensorError

    from steel.infer.load import load_model

    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    model_file = tmp_path / "run" / "checkpoints" / "step-4" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=6"]) == 2
    err = capsys.readouterr().err
    assert f"steel: error: {model_file}: cannot read (" in err and "delete this step directory" in err
    with pytest.raises(ckpt.CheckpointError, match="cannot read"):
        load_model(tmp_path / "run")  # eval / generate / export read it the same way

    def full_disk(tensors, path, *a, **k):
        raise SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    (tmp_path / "b").mkdir()
    other = tiny_config(tmp_path / "b", [data], max_steps=2)
    assert steel(["train", str(other)]) == 1  # an OS error, not a refusal; its first save: no previous one
    assert "cannot write (No space left on device (os error 28)) (STEEL_TRACEBACK=1 shows where)" in (
        capsys.readouterr().err)


def test_a_run_failing_at_startup_frees_its_run_dir(tmp_path, data, capsys):
    # A failure between taking the run-dir lock and the rest of startup (here: train.log cannot be opened)
    # left the dir locked for the rest of the process: every other process was refused.
    import subprocess
    import sys

    from steel import dirlock

    cfg = tiny_config(tmp_path, [data], max_steps=2)
    (tmp_path / "run" / "train.log").mkdir(parents=True)
    assert steel(["train", str(cfg)]) == 1  # an OSError: one line, exit 1
    assert str((tmp_path / "run").resolve()) not in dirlock._held
    code = f"from steel.dirlock import acquire; acquire({str(tmp_path / 'run')!r}, 'steel train')"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "RANK": "0"})
    assert other.returncode == 0, other.stderr


def test_a_refused_sft_writes_nothing(tmp_path, capsys):
    # SFT took its lock (creating RUN_DIR/.steel.lock) before the init model was even loaded.
    (tmp_path / "c.json").write_text('[{"instruction": "q", "input": "", "output": "a"}]')
    (tmp_path / "sft.yaml").write_text(f"init: {tmp_path / 'missing'}\nrun_dir: {tmp_path / 'run'}\n"
                                       f"data: {{datasets: [{{name: c, path: [c.json]}}]}}\n")
    assert steel(["sft", str(tmp_path / "sft.yaml")]) == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_parameters_resume(tmp_path, data):
    """param_dtype bf16 on CUDA: fused MasterWeightAdamW, and its resume (the restored `step` must be on the
    GPU for the fused kernel), continues like the uninterrupted run."""
    cfg = tiny_config(tmp_path, [data], max_steps=8, parallel={"param_dtype": "bf16"})
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    full = losses(run)
    shutil.rmtree(run / "checkpoints" / "step-8")
    assert steel(["train", str(cfg)]) == 0  # resumes from step 4 on the GPU
    again = losses(run)
    assert [s for s, _ in again] == [s for s, _ in full] == list(range(1, 9))
    # The same kernels on the same GPU; bf16 SDPA's backward may sum in another order: 1e-3 of the loss.
    for (_, a), (_, b) in zip(full, again):
        assert math.isfinite(b) and abs(a - b) <= 1e-3 * abs(a)
