"""eval --prompt --answer generate: the paper's prompting rows (src/tc/get_deepseek.py of the seed).

Batched greedy generation against one ``generate`` per example; the answer parser against a copy of the
seed's own lines; the dropped count and macro-F1 against scikit-learn on the kept examples (generation
replaced by chosen answers); the seed's prompt and label order; the command line and its refusals.
"""

from __future__ import annotations

import re

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from task_helpers import prompt_records
from test_prompting import TC_TEST, TC_TRAIN, _write_split

from lrltool import models
from lrltool.downstream import prompting
from lrltool.errors import UsageError
from lrltool.streams import read_records

SEED_CATEGORIES = [
    "geography",
    "science/technology",
    "entertainment",
    "politics",
    "health",
    "travel",
    "sports",
]


def seed_parse(predicted_text: str, categories: list[str]) -> str:
    """get_deepseek.py:50-67 at 150ad4f, copied as the seed wrote it (the reference)."""
    predicted_text = predicted_text.strip()
    match = re.search(r"Answer:\s*(.*)", predicted_text, re.IGNORECASE)
    if match:  # noqa: SIM108 (the seed's lines as it wrote them)
        extracted_text = match.group(1).strip()
    else:
        extracted_text = "invalid"
    matched_categories = [cat for cat in categories if cat in extracted_text.lower()]
    if len(matched_categories) == 1:  # noqa: SIM108
        predicted_label = matched_categories[0]
    else:
        predicted_label = "invalid"
    return predicted_label


@pytest.fixture(scope="module")
def llama(tiny_llama):
    source = models.resolve_model(str(tiny_llama))
    return models.load_tokenizer(source), models.load_model(source)


@pytest.fixture
def tc_data(tmp_path):
    folder = tmp_path / "sib"
    _write_split(folder, "train", TC_TRAIN)
    _write_split(folder, "test", TC_TEST)
    return folder


def test_batched_greedy_generation_equals_one_generate_per_example(llama):
    tokenizer, model = llama
    prompts = [
        "Text: Ana are mere. Answer:",
        "Hi Answer:",
        "Text: Guvernul a demisionat după alegeri. Answer:",
    ]
    prompts += ["Classify the following text. Text: Un om merge acasă pe drum. Answer:", "Da"]
    contexts, _ = prompting.context_ids(tokenizer, prompts, max_length=128, reserve=6)
    batched = prompting.generate_answers(
        model, contexts, max_new_tokens=6, batch_size=3, pad_id=1, eos_ids=[1]
    )
    naive = []
    for context in contexts:  # plain transformers, one unpadded example at a time
        ids = torch.tensor([context])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=6, use_cache=False, pad_token_id=1)  # fmt: skip
        written = out[0, len(context) :].tolist()
        naive.append(written[: written.index(1)] if 1 in written else written)
    assert batched == naive
    assert all(len(answer) == 6 for answer in batched)  # the tiny model writes no EOS within 6 tokens


@pytest.mark.parametrize(
    "generated",
    [
        " sports",  # the label, after a space
        " Sports\n\nThe text is about football.",  # another case; only the first line counts
        "\n\n  Politics.",  # whitespace and newlines before the answer
        " politics and sports",  # two labels: dropped
        " I am not sure.",  # no label: dropped
        " <think>\nThe text mentions a team, so sports.",  # the seed strips no think part: line 1 only
        " science/technology",
        " science",  # part of a label is no label
        " TRAVEL or travel",  # one label named twice is one label
    ],
)
def test_the_answer_parser_agrees_with_the_seeds_lines(generated):
    prompt = f"Classify the following text into one of these categories: {', '.join(SEED_CATEGORIES)}."
    prompt += " Text: Echipa a câștigat. Answer:"
    verbalizers = {label: label for label in SEED_CATEGORIES}
    expected = seed_parse(prompt + generated, SEED_CATEGORIES)
    label, why = prompting.match_label(prompting.extract_answer(prompt + generated), verbalizers)
    assert (label or "invalid") == expected
    assert (why is None) == (expected != "invalid")


def test_unparsed_reasons_and_the_search_start():
    words = {"sports": "sports", "politics": "politics"}
    assert prompting.match_label(None, words) == (None, "no_answer_prefix")
    assert prompting.match_label("politics, sports", words) == (None, "several_labels")
    assert prompting.match_label("nothing", words) == (None, "no_label")
    assert prompting.match_label("SPORTS!", words) == ("sports", None)
    assert prompting.extract_answer("no prefix here") is None
    text = "Text: a Answer: politics\nText: b answer:  sports\nmore"
    assert prompting.extract_answer(text) == "politics"  # the first, case-insensitive
    assert prompting.extract_answer(text, start=text.index("Text: b")) == "sports"  # from the query on
    assert prompting.extract_answer("Topic: x", "Topic:") == "x"


def test_dropped_count_and_metrics_are_scikit_learns_on_the_kept_examples():
    gold = ["sports", "politics", "health", "travel", "sports", "geography"]
    predicted = ["sports", None, "health", "sports", None, "politics"]
    values, scored = prompting.generation_metrics(gold, predicted, SEED_CATEGORIES)
    kept_gold = ["sports", "health", "travel", "geography"]
    kept_pred = ["sports", "health", "sports", "politics"]
    assert scored == 4
    # the seed's call: labels=categories, so labels absent from both lists count 0 (7 in the mean)
    expected = f1_score(kept_gold, kept_pred, average="macro", labels=SEED_CATEGORIES, zero_division=0)
    assert values["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert values["macro_f1"] == pytest.approx((1 + 2 / 3) / 7, abs=1e-12)  # health 1, sports 2/3
    assert values["accuracy"] == pytest.approx(accuracy_score(kept_gold, kept_pred), abs=1e-12) == 0.5
    assert prompting.generation_metrics(["sports"], [None], SEED_CATEGORIES) == (
        {"macro_f1": 0.0, "accuracy": 0.0},
        0,
    )


def test_the_seeds_prompt_and_label_order(tc_data, tmp_path):
    order = prompting.paper_label_order("tc", tc_data)
    # first appearance in TC_TRAIN, then the labels it lacks in SIB-200's order
    assert order == [
        "sports",
        "politics",
        "travel",
        "health",
        "geography",
        "science/technology",
        "entertainment",
    ]
    template = prompting.load_template("tc", paper_order=order)
    seed_template = (
        "Classify the following text into one of these categories: {categories}. Text: {input_text} Answer:"
    )
    text = "Echipa a câștigat."
    assert template.render(text) == seed_template.format(categories=", ".join(order), input_text=text)
    assert template.answer_prefix.strip() == "Answer:" and template.origin == "paper"
    _write_split(tmp_path / "no-train", "test", TC_TEST)
    assert prompting.paper_label_order("tc", tmp_path / "no-train") == SEED_CATEGORIES


def test_real_sib200_train_gives_the_documented_order():
    from tests.paths import EXAMPLES

    tsv = EXAMPLES / "sib200" / "data" / "annotated" / "ron_Latn" / "train.tsv"
    seen: list[str] = []
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        label = line.split("\t")[1]
        if label not in seen:
            seen.append(label)
    assert tuple(seen) == prompting.PAPER_TC_ORDER


def _answers_as(monkeypatch, tokenizer, by_text: dict[str, str]):
    """Replace generation: the query whose text is a key answers its value (token ids of that text)."""

    def fake(model, contexts, **kwargs):
        out = []
        for context in contexts:
            shown = tokenizer.decode(context, skip_special_tokens=True)
            answer = next(a for text, a in by_text.items() if text in shown)
            out.append(tokenizer(answer, add_special_tokens=False)["input_ids"])
        return out

    monkeypatch.setattr(prompting, "generate_answers", fake)


def test_evaluate_generate_records_dropped_scored_and_scikit_learns_f1(tiny_llama, llama, tc_data, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    tokenizer, _ = llama
    answers = dict(zip([t for _, t, _ in TC_TEST], [
        " sports", " politics and sports", " Health", " travel", " ???", " science/technology", " Travel"
    ], strict=True))  # fmt: skip
    _answers_as(monkeypatch, tokenizer, answers)
    preds = tmp_path / "p.jsonl"
    records = prompt_records(task="tc", model=str(tiny_llama), data=tc_data, answer="generate",
                             predictions=str(preds), max_new_tokens=5)  # fmt: skip
    gold = [label for _, _, label in TC_TEST]
    predicted = ["sports", None, "health", "travel", None, "science/technology", "travel"]
    kept = [(g, p) for g, p in zip(gold, predicted, strict=True) if p is not None]
    labels = list(prompting.load_template("tc").labels)
    expected_f1 = f1_score(*zip(*kept, strict=True), average="macro", labels=labels, zero_division=0)
    by_metric = {r["metric"]: r for r in records}
    assert by_metric["macro_f1"]["value"] == pytest.approx(expected_f1, abs=1e-12)
    assert by_metric["accuracy"]["value"] == pytest.approx(4 / 5, abs=1e-12)
    record = by_metric["macro_f1"]
    assert record["n"] == 5
    assert record["settings"]["answer"] == "generate" and record["settings"]["max_new_tokens"] == 5
    assert record["settings"]["score"] is None and record["settings"]["decoding"] == "greedy"
    details = record["details"]
    assert (details["examples"], details["scored"], details["dropped"]) == (7, 5, 2)
    assert details["unparsed"] == {"no_answer_prefix": 0, "no_label": 1, "several_labels": 1}
    rows = list(read_records(preds))
    assert [r["prediction"] for r in rows] == predicted
    assert [r["unparsed"] for r in rows] == [None, "several_labels", None, None, "no_label", None, None]
    assert rows[2]["answer"].strip() == "Health" and "scores" not in rows[2]


def test_paper_compat_makes_generate_the_default_with_the_seeds_prompt(
    tiny_llama, llama, tc_data, monkeypatch
):
    tokenizer, _ = llama
    seen = []

    def fake(model, contexts, **kwargs):
        seen.extend(tokenizer.decode(c, skip_special_tokens=True) for c in contexts)
        return [tokenizer(" sports", add_special_tokens=False)["input_ids"] for _ in contexts]

    monkeypatch.setattr(prompting, "generate_answers", fake)
    records = prompt_records(task="tc", model=str(tiny_llama), data=tc_data, paper_compat=True)
    settings = records[0]["settings"]
    assert (settings["answer"], settings["max_new_tokens"], settings["paper_compat"]) == (
        "generate",
        100,
        True,
    )
    assert settings["template"] == "paper"
    seen.clear()  # the tiny model has 128 positions: 100 new tokens leave the prompt 27, so again with 8
    prompt_records(task="tc", model=str(tiny_llama), data=tc_data, paper_compat=True, max_new_tokens=8)
    assert seen[0].startswith("Classify the following text into one of these categories: sports, politics,")
    assert seen[0].endswith("Answer:")
    assert records[0]["details"]["scored"] == 7 and records[1]["value"] == pytest.approx(1 / 7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"answer": "generate", "score": "mean"}, "--score applies to --answer score"),
        ({"max_new_tokens": 5}, "--max-new-tokens applies to --answer generate"),
        ({"answer": "write"}, "unknown --answer 'write'"),
        ({"answer": "generate", "max_new_tokens": 0}, "--max-new-tokens must be at least 1"),
    ],
)
def test_options_that_do_not_fit_the_answer_mode_are_refused(tiny_llama, tc_data, options, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        prompting.evaluate_prompt(task="tc", model=str(tiny_llama), data=tc_data, **options)


def test_eval_prompt_generate_command_end_to_end(cli, tiny_llama, tc_data, tmp_path):
    out, preds = tmp_path / "m.jsonl", tmp_path / "p.jsonl"
    args = ["eval", "-t", "tc", "--prompt", "-m", tiny_llama, "-d", tc_data, "--answer", "generate"]
    result = cli([*args, "--max-new-tokens", "3", "--predictions", preds, "-o", out])
    assert result.exit_code == 0, result.stderr
    records = list(read_records(out))
    rows = list(read_records(preds))
    assert [r["metric"] for r in records] == ["macro_f1", "accuracy"]
    dropped = sum(r["prediction"] is None for r in rows)
    assert records[0]["details"]["dropped"] == dropped and records[0]["n"] == 7 - dropped
    assert all(isinstance(r["answer"], str) for r in rows)
    assert result.stderr.splitlines()[-1].startswith("eval tc --prompt: 7 in, 2 out;")
    assert f"; dropped {dropped};" in result.stderr.splitlines()[-1]


def test_eval_paper_compat_prompting_of_sa_is_refused(cli, tiny_llama, tmp_path):
    folder = tmp_path / "sa"
    _write_split(folder, "test", [("u1", "Bun.", 1)])
    out = tmp_path / "m.jsonl"
    result = cli(
        ["eval", "-t", "sa", "--prompt", "--paper-compat", "-m", tiny_llama, "-d", folder, "-o", out]
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--paper-compat prompting reproduces the paper's tc script" in result.stderr
    assert not out.exists()
