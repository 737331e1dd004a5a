"""lrltool.runs: run-folder refusal rules, log.jsonl, checkpoints, model card."""

from __future__ import annotations

import json

import pytest
import torch

from lrltool import runs
from lrltool.errors import RunError
from lrltool.lm.adapter import language_adapter_card


def _fake_run(path, finished=False):
    path.mkdir(parents=True)
    (path / "training.json").write_text(json.dumps({"finished": finished, "method": "seq_bn"}))
    (path / "adapter").mkdir()
    (path / "notes.txt").write_text("mine")


def test_new_and_empty_folders_are_accepted(tmp_path):
    run = runs.Run.open(tmp_path / "new")
    assert run.previous is None and not (tmp_path / "new").exists()  # checking changes nothing
    (tmp_path / "empty").mkdir()
    assert runs.Run.open(tmp_path / "empty").previous is None


def test_another_run_is_refused_unless_resume_or_force(tmp_path):
    _fake_run(tmp_path / "r")
    with pytest.raises(RunError, match="holds another run; choose a new -o, add --resume to continue it"):
        runs.Run.open(tmp_path / "r")
    previous = runs.Run.open(tmp_path / "r", resume=True).previous
    assert previous == runs.RunInfo(finished=False, method="seq_bn")
    run = runs.Run.open(tmp_path / "r", force=True)
    assert run.previous is None
    with run:
        run.start(runs.RunInfo(kind="language adapter"))
        assert (tmp_path / "r" / ".lrltool.lock").is_file()  # held while the run is written
    # only what a run writes goes (and the new run's training.json comes); the lock goes with the run
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["notes.txt", "training.json"]


def test_resume_refusals(tmp_path):
    with pytest.raises(RunError, match="no run to resume"):
        runs.Run.open(tmp_path / "none", resume=True)
    _fake_run(tmp_path / "done", finished=True)
    with pytest.raises(RunError, match="already finished"):
        runs.Run.open(tmp_path / "done", resume=True)
    with pytest.raises(RunError, match="exclude each other"):
        runs.Run.open(tmp_path / "done", resume=True, force=True)


def test_non_run_folder_and_file_are_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("x")
    with pytest.raises(RunError, match="not empty and holds no run"):
        runs.Run.open(tmp_path / "data", force=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        runs.Run.open(tmp_path / "f")


def test_run_log_appends_and_truncates_on_resume(tmp_path):
    path = tmp_path / "log.jsonl"
    with runs.RunLog(path) as log:
        for step in (1, 2, 3):
            log.write(step=step, loss=1.0 / step, lr=1e-4, epoch=0.1 * step)
        log.write(step=2, eval_loss=0.4)
    with runs.RunLog(path, keep_through_step=2) as log:
        log.write(step=3, loss=0.25, lr=1e-4, epoch=0.3)
    assert runs.read_log(path) == [
        {"step": 1, "loss": 1.0, "lr": 1e-4, "epoch": 0.1},
        {"step": 2, "loss": 0.5, "lr": 1e-4, "epoch": 0.2},
        {"step": 2, "eval_loss": 0.4},
        {"step": 3, "loss": 0.25, "lr": 1e-4, "epoch": 0.3},
    ]


def test_checkpoint_round_trip_is_exact_and_weights_only(tmp_path):
    param = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.randn(4, 3)
    optimizer.step()
    torch.manual_seed(7)
    folder = tmp_path / "checkpoints" / "last"
    state = {"step": 5, "best_eval_loss": 1.5}
    runs.save_checkpoint(
        folder, weights={"w": param.data}, optimizer=optimizer.state_dict(), state=state, rng=runs.rng_state()
    )
    runs.save_checkpoint(  # a second save replaces the first atomically
        folder, weights={"w": param.data}, optimizer=optimizer.state_dict(), state=state, rng=runs.rng_state()
    )
    assert sorted(p.name for p in folder.parent.iterdir()) == ["last"]
    expected_next = torch.rand(3)
    ckpt = runs.load_checkpoint(folder)
    assert torch.equal(ckpt.weights["w"], param.data)
    assert ckpt.state == state
    restored = torch.optim.AdamW([torch.nn.Parameter(ckpt.weights["w"].clone())], lr=1e-3)
    restored.load_state_dict(ckpt.optimizer)
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    runs.set_rng_state(ckpt.rng)
    assert torch.equal(torch.rand(3), expected_next)
    with open(folder / "weights.safetensors", "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        assert b'"w"' in f.read(header_len)  # a safetensors header, not a pickle


def test_a_checkpoint_loads_onto_the_cpu_device_of_a_process_group(tmp_path):
    """Accelerate puts each process of a CPU group (torchrun / accelerate launch without GPUs) on
    ``cpu:0``, a name safetensors and torch.load's map_location refused ("device cpu:0 is invalid",
    "don't know how to restore data location"): a two-process run on the CPU failed when it exported its
    best checkpoint, and called its last checkpoint damaged when it resumed."""
    param = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.randn(4, 3)
    optimizer.step()
    saved = {"weights": {"w": param.data}, "optimizer": optimizer.state_dict(), "state": {"step": 2}}
    runs.save_checkpoint(tmp_path / "last", **saved, rng=runs.rng_state())
    for device in (torch.device("cpu", 0), "cpu:0", torch.device("cpu")):
        loaded = runs.load_checkpoint(tmp_path / "last", device=device)
        assert torch.equal(loaded.weights["w"], param.data) and loaded.weights["w"].device.type == "cpu"
        exp_avg = loaded.optimizer["state"][0]["exp_avg"]
        assert (
            torch.equal(exp_avg, optimizer.state_dict()["state"][0]["exp_avg"])
            and exp_avg.device.type == "cpu"
        )


def test_damaged_checkpoint_is_a_run_error(tmp_path):
    (tmp_path / "last").mkdir()
    with pytest.raises(RunError, match="cannot read the checkpoint"):
        runs.load_checkpoint(tmp_path / "last")
    # weights cut short (safetensors' own error type, not a RuntimeError)
    runs.save_checkpoint(
        tmp_path / "cut", weights={"w": torch.ones(2)}, optimizer={}, state={"step": 1}, rng={}
    )
    (tmp_path / "cut" / "weights.safetensors").write_bytes(b"junk")
    with pytest.raises(RunError, match=r"cannot read the checkpoint .*header too small.*damaged"):
        runs.load_checkpoint(tmp_path / "cut")


def test_model_card_names_the_run():
    card = language_adapter_card(
        runs.RunInfo.from_json(
            {
                "model": "xlm-roberta-base",
                "model_revision": "abc",
                "method": "seq_bn_inv",
                "objective": "mlm",
                "lang": "ron_Latn",
                "source": "glotcc",
                "data": {"records": 1200, "tokens": 34567, "hash": "f" * 64},
                "trainable_parameters": 1190592,
                "steps": 100,
                "best_step": 50,
                "best_eval_loss": 2.5,
                "seconds": 12.0,
                "settings": {"lr": 1e-4},
                "command": "lrltool train-adapter ...",
            }
        )
    ).render()
    assert "# language adapter: xlm-roberta-base / seq_bn_inv" in card
    assert "- language: ron_Latn; data source: glotcc" in card
    assert "- data: 1,200 records, 34,567 tokens" in card
    assert "- trainable parameters: 1,190,592" in card
    assert "best validation loss 2.5 at step 50" in card
    assert "| lr | 0.0001 |" in card
    assert "model.load_adapter('adapter', set_active=True)" in card
