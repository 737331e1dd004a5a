"""eval --task tc|sa|ner: metrics against scikit-learn and seqeval, predictions, seeds, bad input."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from task_helpers import evaluate_run, make_lang_run, make_task_data, read_jsonl, write_jsonl

from lrltool.downstream import finetune as ft
from lrltool.errors import InputError, RunError
from lrltool.tasks import TASKS


def _finetune(task, model, data, out, *, lang_adapters=(), fusion=False, seeds=None, **settings):
    values = {"max_steps": 6, "batch_size": 8, "eval_steps": 3, "lr": 1e-2, **settings}
    ft.finetune(
        task=task,
        model=str(model),
        data=data,
        out=out,
        lang_adapters=[str(p) for p in lang_adapters],
        fusion=fusion,
        settings=ft.make_settings(task, **values),
        seeds=seeds,
        device="cpu",
    )
    return out


@pytest.fixture(scope="module")
def trained(tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    """Finished runs shared by the tests below (trained once: a few seconds each)."""
    root = tmp_path_factory.mktemp("eval-runs")
    data = {task: make_task_data(root / "data" / task, task, n_test=20) for task in ("tc", "sa", "ner")}
    glotcc = make_lang_run(tiny_xlmr, root / "lang-glotcc", method="seq_bn", source="glotcc")
    conceptnet = make_lang_run(
        tiny_xlmr, root / "lang-conceptnet", method="seq_bn", source="conceptnet", seed=3
    )
    return {
        "model": tiny_xlmr,
        **{f"data-{k}": v for k, v in data.items()},
        "glotcc": glotcc,
        "tc": _finetune("tc", tiny_xlmr, data["tc"], root / "tc", lang_adapters=[glotcc]),
        "sa-fusion": _finetune(
            "sa", tiny_xlmr, data["sa"], root / "sa", lang_adapters=[glotcc, conceptnet], fusion=True
        ),
        # a high learning rate: a few steps then tag some words as entities (not everything O)
        "ner": _finetune("ner", tiny_xlmr, data["ner"], root / "ner", lr=0.1, max_steps=8, eval_steps=4),
        "ner-subwords": _finetune(
            "ner", tiny_xlmr, data["ner"], root / "ner-sub", lr=0.1, max_steps=8, label_all_subwords=True
        ),
        "ner-short": _finetune("ner", tiny_xlmr, data["ner"], root / "ner-short", max_length=12, max_steps=2),
        "seeds": _finetune(
            "sa", tiny_xlmr, data["sa"], root / "seeds", seeds=[1, 2, 3], max_steps=3, lr=3e-2
        ),
    }


def _plain_adapters_model(model_dir: Path, run: Path, cls_name: str, labels: int, lang: Path | None = None):
    """The run's adapters loaded with plain adapters-library calls, as a user would (the reference)."""
    import adapters
    import transformers
    from adapters import Stack

    model = getattr(transformers, cls_name).from_pretrained(model_dir, num_labels=labels)
    adapters.init(model)
    task = model.load_adapter(str(run / "adapter"))  # with its head (head_config.json)
    if lang is not None:
        model.load_adapter(str(lang / "adapter"), load_as="lang", with_head=False)
        model.active_adapters = Stack("lang", task)
    else:
        model.set_active_adapters(task)
    return model.eval()


# --- metrics against the reference implementations --------------------------------------------------


def test_tc_metrics_equal_scikit_learn_on_the_predictions_file(trained, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    from lrltool import models

    tiny_xlmr = trained["model"]
    predictions = tmp_path / "pred.jsonl"
    records = evaluate_run(task="tc", run=trained["tc"], predictions=predictions)
    assert [r["metric"] for r in records] == ["macro_f1", "accuracy"]
    rows = read_jsonl(predictions)
    test = read_jsonl(trained["data-tc"] / "test.jsonl")
    assert [r["id"] for r in rows] == [t["id"] for t in test]
    assert [r["gold"] for r in rows] == [t["label"] for t in test]
    gold, pred = [r["gold"] for r in rows], [r["predicted"] for r in rows]
    assert len(set(pred)) > 1  # not a constant prediction: the comparison below means something
    assert records[0]["value"] == f1_score(gold, pred, average="macro")
    assert records[1]["value"] == accuracy_score(gold, pred)
    assert records[0]["n"] == records[1]["n"] == 20
    # the predictions are what plain adapters code makes of the saved task adapter + head (MAD-X stack)
    reference = _plain_adapters_model(
        tiny_xlmr, trained["tc"], "XLMRobertaForSequenceClassification", 7, lang=trained["glotcc"]
    )
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_xlmr)))
    batch = tokenizer(
        [t["text"] for t in test], padding=True, truncation=True, max_length=128, return_tensors="pt"
    )
    with torch.no_grad():
        expected = reference(**batch).logits.argmax(-1).tolist()
    assert pred == [TASKS["tc"].labels[i] for i in expected]


def test_record_fields_say_what_was_evaluated(trained):
    tc = evaluate_run(task="tc", run=trained["tc"])[0]
    assert {
        k: tc[k] for k in ("task", "method", "source", "adapter", "task_method", "split", "seed", "lang")
    } == {
        "task": "tc",
        "method": "seq_bn",
        "source": "glotcc",
        "adapter": str(trained["glotcc"]),
        "task_method": "adapter",
        "split": "test",
        "seed": 42,
        "lang": "ron_Latn",
    }
    assert tc["aggregate"] is None and tc["settings"]["max_length"] == 128
    assert tc["details"]["data"] == str(trained["data-tc"] / "test.jsonl")
    fused = evaluate_run(task="sa", run=trained["sa-fusion"])[0]
    assert (fused["method"], fused["source"]) == ("fusion", "glotcc+conceptnet")
    assert fused["adapter"] == f"{trained['glotcc']}+{trained['glotcc'].parent / 'lang-conceptnet'}"
    base = evaluate_run(task="ner", run=trained["ner"])[0]
    # no language adapter: the run's language comes from its data's records
    assert (base["method"], base["source"], base["adapter"], base["lang"]) == ("base", None, None, "ron_Latn")


def test_ner_word_level_metrics_equal_seqeval_on_the_predictions_file(trained, tmp_path):
    from seqeval.metrics import f1_score, precision_score, recall_score

    from lrltool import models

    tiny_xlmr = trained["model"]
    predictions = tmp_path / "pred.jsonl"
    records = evaluate_run(task="ner", run=trained["ner"], predictions=predictions)
    assert [r["metric"] for r in records] == ["precision", "recall", "f1"]
    rows = read_jsonl(predictions)
    test = read_jsonl(trained["data-ner"] / "test.jsonl")
    assert [(r["id"], r["tokens"], r["gold"]) for r in rows] == [
        (t["id"], t["tokens"], t["tags"]) for t in test
    ]
    gold, pred = [r["gold"] for r in rows], [r["predicted"] for r in rows]
    assert all(len(p) == len(g) for p, g in zip(pred, gold, strict=True))
    assert len({tag for p in pred for tag in p}) > 1
    assert records[0]["value"] == precision_score(gold, pred)
    assert records[1]["value"] == recall_score(gold, pred)
    assert records[2]["value"] == f1_score(gold, pred)
    assert records[2]["details"]["scoring"] == "word"
    # each word's tag is its first sub-token's prediction by plain adapters code (is_split_into_words)
    reference = _plain_adapters_model(tiny_xlmr, trained["ner"], "XLMRobertaForTokenClassification", 7)
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_xlmr)))
    for row in rows:
        enc = tokenizer(
            row["tokens"], is_split_into_words=True, truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.no_grad():
            best = reference(**enc).logits[0].argmax(-1).tolist()
        word_ids = enc.word_ids()
        firsts = [word_ids.index(w) for w in range(len(row["tokens"]))]
        assert row["predicted"] == [TASKS["ner"].labels[best[j]] for j in firsts]


def test_ner_label_all_subwords_scores_every_subtoken(trained, tmp_path):
    from seqeval.metrics import f1_score

    info = json.loads((trained["ner-subwords"] / "training.json").read_text())
    assert info["settings"]["label_all_subwords"] is True
    predictions = tmp_path / "pred.jsonl"
    records = evaluate_run(task="ner", run=trained["ner-subwords"], predictions=predictions)
    rows = read_jsonl(predictions)
    test = read_jsonl(trained["data-ner"] / "test.jsonl")
    assert records[2]["details"]["scoring"] == "subword"
    assert sum(len(r["tokens"]) for r in rows) > sum(len(t["tokens"]) for t in test)  # sub-tokens, not words
    first = rows[0]
    words = test[0]["tokens"]
    # sub-tokens of the first sentence re-join to its words (XLM-R marks word starts with ▁)
    assert "".join(first["tokens"]).replace("▁", " ").split() == words
    assert records[2]["value"] == f1_score([r["gold"] for r in rows], [r["predicted"] for r in rows])


def test_words_cut_off_by_max_length_are_predicted_o(trained, tmp_path):
    from lrltool import models

    tiny_xlmr = trained["model"]
    predictions = tmp_path / "pred.jsonl"
    records = evaluate_run(task="ner", run=trained["ner-short"], predictions=predictions)
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_xlmr)))
    expected_cut = 0
    for row in read_jsonl(predictions):
        kept = {
            w
            for w in tokenizer(
                row["tokens"], is_split_into_words=True, truncation=True, max_length=12
            ).word_ids()
            if w is not None
        }
        cut = [w for w in range(len(row["tokens"])) if w not in kept]
        assert all(row["predicted"][w] == "O" for w in cut)
        expected_cut += len(cut)
    assert expected_cut > 0
    assert records[0]["details"]["words_cut_off"] == expected_cut


# --- seeds ------------------------------------------------------------------------------------------


def test_seed_runs_give_one_record_per_seed_and_metric_plus_the_mean(trained, tmp_path):
    predictions = tmp_path / "pred.jsonl"
    records = evaluate_run(task="sa", run=trained["seeds"], predictions=predictions)
    singles = [r for r in records if r["aggregate"] is None]
    means = [r for r in records if r["aggregate"] == "mean"]
    assert [(r["seed"], r["metric"]) for r in singles] == [
        (s, m) for s in (1, 2, 3) for m in ("macro_f1", "accuracy")
    ]
    assert len({r["value"] for r in singles if r["metric"] == "accuracy"}) > 1  # the seeds differ
    for metric in ("macro_f1", "accuracy"):
        values = [r["value"] for r in singles if r["metric"] == metric]
        (mean,) = [r for r in means if r["metric"] == metric]
        assert mean["value"] == statistics.fmean(values)
        assert mean["details"]["sd"] == statistics.stdev(values)
        assert mean["details"]["seeds"] == [1, 2, 3] and mean["seed"] is None
    # each seed's record equals evaluating that seed's folder alone
    for seed in (1, 2, 3):
        alone = evaluate_run(task="sa", run=trained["seeds"] / f"seed-{seed}")
        assert [r["value"] for r in alone] == [r["value"] for r in singles if r["seed"] == seed]
    rows = read_jsonl(predictions)
    assert [r["seed"] for r in rows] == [1] * 20 + [2] * 20 + [3] * 20


# --- bad input ------------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_finetune_run_is_refused(trained, tmp_path):
    with pytest.raises(RunError, match="a train-adapter run"):
        evaluate_run(task="tc", run=trained["glotcc"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not a finetune run"):
        evaluate_run(task="tc", run=tmp_path / "empty")
    with pytest.raises(RunError, match="no such run folder"):
        evaluate_run(task="tc", run=tmp_path / "missing")


def test_task_that_does_not_match_the_run_is_refused(trained, tmp_path):
    with pytest.raises(RunError, match="trained for the task ner, not tc; use --task ner"):
        evaluate_run(task="tc", run=trained["ner"], predictions=tmp_path / "p.jsonl")
    assert not (tmp_path / "p.jsonl").exists()


def test_labels_the_run_never_saw_are_refused_at_their_line(trained, tmp_path):
    test = read_jsonl(trained["data-sa"] / "test.jsonl")
    test[3]["label"] = "2"
    bad = write_jsonl(tmp_path / "test.jsonl", test)
    with pytest.raises(InputError) as info:
        evaluate_run(task="sa", run=trained["seeds"], data=bad, predictions=tmp_path / "p.jsonl")
    assert str(info.value).startswith(
        f"{bad}:4: label '2' is not one of the sa labels; the run was trained on"
    )
    assert not (tmp_path / "p.jsonl").exists()


def test_empty_evaluation_set_is_refused(trained, tmp_path):
    empty = write_jsonl(tmp_path / "test.jsonl", [])
    with pytest.raises(InputError, match="no tc examples in the file"):
        evaluate_run(task="tc", run=trained["tc"], data=empty)


def test_unfinished_run_and_changed_language_adapter_are_refused(trained, tmp_path):
    copy = shutil.copytree(trained["tc"], tmp_path / "tc")
    info = json.loads((copy / "training.json").read_text())
    lang_copy = shutil.copytree(trained["glotcc"], tmp_path / "lang")
    info["lang_adapters"][0]["folder"] = str(lang_copy / "adapter")
    (copy / "training.json").write_text(json.dumps(info))
    assert (
        evaluate_run(task="tc", run=copy)[0]["value"]
        == (evaluate_run(task="tc", run=trained["tc"])[0]["value"])
    )
    weights = lang_copy / "adapter" / "adapter.safetensors"
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 1.0
    save_file(tensors, str(weights))
    with pytest.raises(RunError, match="has changed since this run was trained"):
        evaluate_run(task="tc", run=copy)
    info["finished"] = False
    (copy / "training.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="has not finished"):
        evaluate_run(task="tc", run=copy)


def test_task_evaluator_writes_records_and_refuses_bad_options(cli, trained, tmp_path):
    output, stats = tmp_path / "metrics.jsonl", tmp_path / "stats.json"
    validation = trained["data-tc"] / "validation.jsonl"
    result = cli(["eval", "--task", "tc", "--run", trained["tc"], validation, "-o", output, "--stats", stats])
    assert result.exit_code == 0, result.stderr
    records = read_jsonl(output)
    assert records[0]["split"] == "validation" and records[0]["n"] == 12
    summary = json.loads(stats.read_text())
    assert (summary["command"], summary["records_in"], summary["records_out"], summary["runs"]) == (
        "eval tc", 12, 2, 1,
    )  # fmt: skip
    missing = cli(["eval", "--task", "tc", "-o", tmp_path / "x.jsonl"])
    assert missing.exit_code == 2 and "--task tc needs --run" in missing.stderr
    twice = cli(
        [
            "eval",
            "--task",
            "tc",
            "--run",
            trained["tc"],
            "a.jsonl",
            "--data",
            "b.jsonl",
            "-o",
            tmp_path / "x.jsonl",
        ]
    )
    assert twice.exit_code == 2 and "given twice" in twice.stderr
    assert not (tmp_path / "x.jsonl").exists()


# --- the eval command -------------------------------------------------------------------------------


def _one_line_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_eval_command_writes_metric_records_and_predictions(cli, trained, tmp_path):
    from sklearn.metrics import f1_score

    predictions = tmp_path / "pred.jsonl.zst"
    result = cli(
        ["eval", "--task", "tc", "--run", trained["tc"], "--predictions", predictions, "--batch-size", 4]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["metric"] for r in records] == ["macro_f1", "accuracy"]
    assert "eval tc: 20 in, 2 out" in result.stderr
    from lrltool.streams import read_records

    rows = list(read_records(predictions))  # .zst by suffix
    assert records[0]["value"] == f1_score(
        [r["gold"] for r in rows], [r["predicted"] for r in rows], average="macro"
    )
    # batch size does not change the scores
    again = cli(["eval", "--task", "tc", "--run", trained["tc"], "--batch-size", 32])
    assert [json.loads(line)["value"] for line in again.stdout.splitlines()] == [r["value"] for r in records]
    # a run without a language adapter or --lang at finetune took its language from its data's records
    unlabelled = cli(["eval", "--task", "ner", "--run", trained["ner"]])
    assert {json.loads(line)["lang"] for line in unlabelled.stdout.splitlines()} == {"ron_Latn"}
    labelled = cli(["eval", "--task", "ner", "--run", trained["ner"], "--lang", "ro"])
    assert {json.loads(line)["lang"] for line in labelled.stdout.splitlines()} == {"ron_Latn"}


def test_eval_command_bad_input_is_one_line_and_writes_nothing(cli, trained, tmp_path):
    pred = tmp_path / "pred.jsonl"
    _one_line_error(cli(["eval", "--task", "tc", "--run", trained["glotcc"], "--predictions", pred]), 1,
                    "a train-adapter run (a language adapter), not a finetune run")  # fmt: skip
    _one_line_error(cli(["eval", "--task", "sa", "--run", trained["tc"], "--predictions", pred]), 1,
                    "trained for the task tc, not sa")  # fmt: skip
    bad = read_jsonl(trained["data-tc"] / "test.jsonl")
    bad[1]["label"] = "cooking"
    bad_file = write_jsonl(tmp_path / "bad.jsonl", bad)
    tc = ["eval", "--task", "tc", "--run", trained["tc"], "--predictions", pred]
    _one_line_error(
        cli([*tc, "--data", bad_file]), 1, f"{bad_file}:2: label 'cooking' is not one of the tc labels"
    )
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    _one_line_error(cli(["eval", "--task", "tc", "--run", trained["tc"], empty, "--predictions", pred]), 1,
                    "no tc examples in the file")  # fmt: skip
    _one_line_error(cli(["eval", "--task", "tc", "--data", empty]), 2, "--task tc needs --run")
    _one_line_error(cli(["eval", "--task", "tc", "--run", trained["tc"], "--variant", "original"]), 2,
                    "--variant does not apply to --task tc")  # fmt: skip
    _one_line_error(cli(["eval", "--task", "mlm", "--model", trained["model"], "--run", trained["tc"]]), 2,
                    "--run does not apply to --task mlm")  # fmt: skip
    assert not pred.exists()
