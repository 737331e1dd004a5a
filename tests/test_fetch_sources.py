"""`fetch glotcc|flores|sib200|wikiann|sentiment`: files in the published formats in, exact records out."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from fetch_helpers import assert_error, assert_no_output, jsonl, write_parquet

from lrltool.sources import SOURCES
from lrltool.streams import read_records
from tests.paths import EXAMPLES as EXAMPLES_DIR

# --- glotcc ---------------------------------------------------------------------------------------

GLOTCC_SCHEMA = pa.schema(
    [
        ("content", pa.string()),
        ("warc-target-uri", pa.string()),
        ("warc-date", pa.string()),
        ("warc-record-id", pa.string()),
        ("quality-warnings", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("identification-language", pa.string()),
        ("identification-prob", pa.float64()),
        ("identification-consistency", pa.float64()),
        ("script-percentage", pa.float64()),
        ("num-sents", pa.int64()),
        ("content-length", pa.int64()),
        ("tlsh", pa.string()),
    ]
)


def glotcc_shard(path, texts, start=0):
    n = len(texts)
    return write_parquet(
        path,
        {
            "content": texts,
            "warc-target-uri": [f"https://a.ro/{start + i}" for i in range(n)],
            "warc-date": ["2023-06-01T10:00:00Z"] * n,
            "warc-record-id": [f"<urn:uuid:{start + i:08d}>" for i in range(n)],
            "quality-warnings": [["tiny"] if i == 0 else [] for i in range(n)],
            "categories": [[] for _ in range(n)],
            "identification-language": ["ron_Latn"] * n,
            "identification-prob": [0.5 + i / 1000 for i in range(n)],
            "identification-consistency": [1.0] * n,
            "script-percentage": [1.0] * n,
            "num-sents": [1] * n,
            "content-length": [len((t or "").encode()) for t in texts],
            "tlsh": ["T1AB"] * n,
        },
        schema=GLOTCC_SCHEMA,
    )


def test_glotcc_reads_shards_in_natural_order_and_keeps_useful_columns(cli, tmp_path):
    folder = tmp_path / "v1.0" / "ron-Latn"
    glotcc_shard(folder / "ron-Latn_10.parquet", ["Al treilea document."], start=10)
    glotcc_shard(folder / "ron-Latn_2.parquet", ["Primul document.\nA doua linie.", "", None, "  "], start=2)
    stats = tmp_path / "stats.json"
    result = cli(["fetch", "glotcc", "-l", "ron", "-i", tmp_path, "--stats", stats])
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == [
        {
            "id": "<urn:uuid:00000002>",
            "text": "Primul document.\nA doua linie.",
            "lang": "ron_Latn",
            "source": "glotcc",
            "meta": {
                "url": "https://a.ro/2",
                "date": "2023-06-01T10:00:00Z",
                "warc_record_id": "<urn:uuid:00000002>",
                "categories": [],
                "quality_warnings": ["tiny"],
                "lid_prob": 0.5,
                "file": "ron-Latn_2.parquet",
            },
        },
        {
            "id": "<urn:uuid:00000010>",
            "text": "Al treilea document.",
            "lang": "ron_Latn",
            "source": "glotcc",
            "meta": {
                "url": "https://a.ro/10",
                "date": "2023-06-01T10:00:00Z",
                "warc_record_id": "<urn:uuid:00000010>",
                "categories": [],
                "quality_warnings": ["tiny"],
                "lid_prob": 0.5,
                "file": "ron-Latn_10.parquet",
            },
        },
    ]
    assert json.loads(stats.read_text())["dropped"] == {"empty_text": 3}


def test_glotcc_streams_batches_in_order_like_a_whole_table_read(cli, tmp_path):
    import pyarrow.parquet as pq

    texts = [f"Propoziția numărul {i}." for i in range(2500)]  # more than two batches
    shard = glotcc_shard(tmp_path / "s.parquet", texts)
    result = cli(["fetch", "glotcc", "-l", "ro", "-i", shard])
    assert [r["text"] for r in jsonl(result.stdout)] == pq.read_table(shard).column("content").to_pylist()


def test_glotcc_without_optional_columns_uses_file_and_row_ids(cli, tmp_path):
    shard = write_parquet(tmp_path / "x.parquet", {"content": ["Unu.", "Doi."]})
    result = cli(["fetch", "glotcc", "-l", "ro", "-i", shard])
    assert [(r["id"], r["meta"]) for r in jsonl(result.stdout)] == [
        ("x:1", {"file": "x.parquet"}),
        ("x:2", {"file": "x.parquet"}),
    ]


def test_glotcc_bad_inputs(cli, tmp_path):
    wrong = write_parquet(tmp_path / "w.parquet", {"text": ["Unu."]})
    assert_error(cli(["fetch", "glotcc", "-l", "ro", "-i", wrong]), "parquet file has no column 'content'")
    junk = tmp_path / "j.parquet"
    junk.write_text("not parquet")
    assert_error(cli(["fetch", "glotcc", "-l", "ro", "-i", junk]), f"{junk}: not a readable parquet file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(cli(["fetch", "glotcc", "-l", "ro", "-i", empty]), "no GlotCC shards for ron-Latn found")
    assert_error(cli(["fetch", "glotcc", "-l", "ro", "-i", tmp_path / "nope"]), "no such file or folder")


# --- flores ---------------------------------------------------------------------------------------


def test_flores_200_tarball_layout_devtest_and_dev(cli, tmp_path):
    root = tmp_path / "flores200_dataset"
    (root / "devtest").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "devtest" / "ron_Latn.devtest").write_text("Prima propoziție.\nA doua.\n", encoding="utf-8")
    (root / "dev" / "ron_Latn.dev").write_text("Alta.\n", encoding="utf-8")
    (root / "devtest" / "bul_Cyrl.devtest").write_text("Друго.\n", encoding="utf-8")
    result = cli(["fetch", "flores", "-l", "ro", "-i", tmp_path])
    assert jsonl(result.stdout) == [
        {
            "id": "devtest:1",
            "text": "Prima propoziție.",
            "lang": "ron_Latn",
            "source": "flores",
            "meta": {"split": "devtest", "edition": "flores200"},
        },
        {
            "id": "devtest:2",
            "text": "A doua.",
            "lang": "ron_Latn",
            "source": "flores",
            "meta": {"split": "devtest", "edition": "flores200"},
        },
    ]
    dev = cli(["fetch", "flores", "-l", "ro", "-i", root, "--split", "dev"])
    assert jsonl(dev.stdout) == [
        {
            "id": "dev:1",
            "text": "Alta.",
            "lang": "ron_Latn",
            "source": "flores",
            "meta": {"split": "dev", "edition": "flores200"},
        }
    ]


def test_flores_plus_parquet_and_jsonl(cli, tmp_path):
    write_parquet(
        tmp_path / "devtest" / "ron_Latn.parquet",
        {
            "id": [1, 2],
            "iso_639_3": ["ron", "ron"],
            "iso_15924": ["Latn", "Latn"],
            "glottocode": ["roma1327", "roma1327"],
            "text": ["Unu.", "Doi."],
            "url": ["https://en.wikinews.org/a", "https://en.wikibooks.org/b"],
            "domain": ["wikinews", "wikibooks"],
            "topic": ["science", "travel"],
        },
    )
    result = cli(["fetch", "flores", "-l", "ron_Latn", "-i", tmp_path])
    assert jsonl(result.stdout) == [
        {
            "id": "devtest:1",
            "text": "Unu.",
            "lang": "ron_Latn",
            "source": "flores",
            "meta": {
                "split": "devtest",
                "url": "https://en.wikinews.org/a",
                "domain": "wikinews",
                "topic": "science",
                "edition": "flores_plus",
            },
        },
        {
            "id": "devtest:2",
            "text": "Doi.",
            "lang": "ron_Latn",
            "source": "flores",
            "meta": {
                "split": "devtest",
                "url": "https://en.wikibooks.org/b",
                "domain": "wikibooks",
                "topic": "travel",
                "edition": "flores_plus",
            },
        },
    ]
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "ron_Latn.jsonl").write_text('{"id": 7, "text": "Șapte."}\n', encoding="utf-8")
    dev = cli(["fetch", "flores", "-l", "ro", "-i", tmp_path, "--split", "dev"])
    assert [(r["id"], r["text"]) for r in jsonl(dev.stdout)] == [("dev:7", "Șapte.")]


def test_flores_bad_inputs(cli, tmp_path):
    assert_error(
        cli(["fetch", "flores", "-l", "ro", "-i", tmp_path]), "no FLORES devtest file for ron_Latn found"
    )
    assert_error(
        cli(["fetch", "flores", "-l", "ro", "-i", tmp_path, "--split", "test"]), "no split 'test'", code=2
    )
    (tmp_path / "dev").mkdir()
    bad = tmp_path / "dev" / "ron_Latn.jsonl"
    bad.write_text('{"id": 1, "text": "Bun."}\n{"id": 2}\n', encoding="utf-8")
    assert_error(
        cli(["fetch", "flores", "-l", "ro", "-i", tmp_path, "--split", "dev"]),
        f"{bad}:2: FLORES+ record has no 'text' key",
    )


# --- sib200 ---------------------------------------------------------------------------------------

SIB_TSV = (
    "index_id\tcategory\ttext\n"
    "1\tscience/technology\tO propoziție simplă.\n"
    '7\ttravel\t"Un câmp cu ""ghilimele"" și\tun tab"\n'
    "9\tgeography\tUltima.\n"
)


def sib_folder(root, code="ron_Latn", files=("train", "dev", "test")):
    folder = root / "data" / "annotated" / code
    folder.mkdir(parents=True)
    for name in files:
        (folder / f"{name}.tsv").write_text(SIB_TSV, encoding="utf-8")
    return folder


def test_sib200_label_order_is_the_documented_one():
    assert SOURCES["sib200"].labels == (
        "science/technology",
        "travel",
        "politics",
        "sports",
        "health",
        "entertainment",
        "geography",
    )


def test_sib200_tsv_with_quoted_fields_to_three_split_files(cli, tmp_path):
    sib_folder(tmp_path / "sib")
    out = tmp_path / "out"
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "test.jsonl.zst",
        "train.jsonl.zst",
        "validation.jsonl.zst",
    ]
    expected = [
        {"id": "1", "text": "O propoziție simplă.", "label": "science/technology"},
        {"id": "7", "text": 'Un câmp cu "ghilimele" și\tun tab', "label": "travel"},
        {"id": "9", "text": "Ultima.", "label": "geography"},
    ]
    for split in ("train", "validation", "test"):
        assert list(read_records(out / f"{split}.jsonl.zst")) == expected
    assert result.stderr.strip() == "fetch sib200: 9 in, 9 out; train 3; validation 3; test 3; code ron_Latn"


def test_sib200_parquet_export_layout_and_one_split_on_stdout(cli, tmp_path):
    for split in ("train", "validation", "test"):
        write_parquet(
            tmp_path / "ron_Latn" / split / "0000.parquet",
            {"index_id": [3, 4], "text": [f"{split} a", f"{split} b"], "category": ["health", "sports"]},
        )
    result = cli(["fetch", "sib200", "-l", "ron", "-i", tmp_path, "--split", "dev"])
    assert jsonl(result.stdout) == [
        {"id": "3", "text": "validation a", "label": "health"},
        {"id": "4", "text": "validation b", "label": "sports"},
    ]


def test_sib200_bad_inputs_leave_no_output(cli, tmp_path):
    folder = sib_folder(tmp_path / "sib", files=("train", "test"))
    out = tmp_path / "out"
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", out])
    assert_error(result, "no SIB-200 validation split for ron_Latn found")
    assert not out.exists()
    (folder / "dev.tsv").write_text(SIB_TSV.replace("geography", "cooking"), encoding="utf-8")
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", out])
    assert_error(
        result, f"{folder / 'dev.tsv'}:4: unknown category 'cooking'; SIB-200 labels are science/technology,"
    )
    assert not out.exists()  # the folder made for the output is gone too
    (folder / "dev.tsv").write_text("index_id\tcategory\ttext\n1\ttravel\n", encoding="utf-8")
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", out])
    assert_error(result, f"{folder / 'dev.tsv'}:2: expected 3 tab-separated fields, found 2")
    (folder / "dev.tsv").write_text("id\tlabel\tsentence\n1\ttravel\tx\n", encoding="utf-8")
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", out])
    assert_error(result, f"{folder / 'dev.tsv'}:1: header is ['id', 'label', 'sentence']")
    assert not out.exists()  # the folder made for the output is gone too


STRAY_QUOTE_TSV = (
    "index_id\tcategory\ttext\n"
    "1\ttravel\tÎnainte.\n"
    '2\thealth\t"Un ghilimel rătăcit\n'  # an opening quote never closed: this line only is bad
    "3\tsports\tDupă.\n"
    "4\tgeography\tUltima.\n"
)


def test_sib200_a_stray_quote_costs_exactly_its_line(cli, tmp_path):
    folder = sib_folder(tmp_path / "sib", files=())
    (folder / "test.tsv").write_text(STRAY_QUOTE_TSV, encoding="utf-8")
    args = ["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "--split", "test"]
    assert_error(cli(args), f"{folder / 'test.tsv'}:3: malformed quoting (unexpected end of data)")
    result = cli([*args, "--skip-bad-lines"])
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in jsonl(result.stdout)] == ["1", "3", "4"]
    assert "4 in, 3 out" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("source", ["sib200", "sentiment"])
def test_non_utf8_tsv_and_csv_are_one_line_errors_naming_the_line(cli, tmp_path, source):
    if source == "sib200":
        folder = sib_folder(tmp_path / "in", files=())
        path = folder / "test.tsv"
        path.write_bytes("index_id\tcategory\ttext\n1\ttravel\tBun.\n2\ttravel\tR\xe2u.\n".encode("latin-1"))
    else:
        folder = sentiment_folder(tmp_path / "in")
        path = folder / "test.csv"
        path.write_bytes("text,label\nBun.,1\nR\xe2u.,0\n".encode("latin-1"))
    args = ["fetch", source, "-l", "ro", "-i", tmp_path / "in", "--split", "test"]
    assert_error(cli(args), f"{path}:3: line is not valid UTF-8; save the file as UTF-8")
    result = cli([*args, "--skip-bad-lines"])
    assert result.exit_code == 0, result.stderr
    assert [r["text"] for r in jsonl(result.stdout)] == ["Bun."]


def test_sentiment_lines_after_a_skipped_non_utf8_line_keep_their_numbers(cli, tmp_path):
    folder = sentiment_folder(tmp_path / "in")
    path = folder / "test.csv"
    path.write_bytes("text,label\nBun.,1\nR\xe2u.,0\nAltul.,7\nUltimul.,0\n".encode("latin-1"))
    args = ["fetch", "sentiment", "-l", "ro", "-i", tmp_path / "in", "--split", "test", "--skip-bad-lines"]
    result = cli(args)
    assert result.exit_code == 0, result.stderr
    assert [r["text"] for r in jsonl(result.stdout)] == ["Bun.", "Ultimul."]
    assert f"{path}:3: line is not valid UTF-8" in result.stderr
    assert f"{path}:4: label '7' is not 0 or 1" in result.stderr


def test_multi_split_sources_need_a_folder_or_a_split(cli, tmp_path):
    sib_folder(tmp_path / "sib")
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib"])
    assert_error(result, "sib200 has 3 splits (train, validation, test); give -o DIR", code=2)
    (tmp_path / "file").write_text("")
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "-o", tmp_path / "file"])
    assert_error(result, "is a file; without --split, -o names a folder", code=2)
    result = cli(["fetch", "conceptnet", "-l", "ro", "--split", "train"])
    assert_error(result, "conceptnet has no splits", code=2)


# --- wikiann --------------------------------------------------------------------------------------


def wikiann_shard(path, tokens, tags):
    return write_parquet(
        path,
        {
            "tokens": pa.array(tokens, pa.list_(pa.string())),
            "ner_tags": pa.array(tags, pa.list_(pa.int64())),
            "langs": pa.array([["ro"] * len(t) for t in tokens], pa.list_(pa.string())),
            "spans": pa.array([["PER: Ana Pop"] for _ in tokens], pa.list_(pa.string())),
        },
    )


def test_wikiann_int_tags_become_names(cli, tmp_path):
    for split in ("train", "validation", "test"):
        wikiann_shard(
            tmp_path / "ro" / f"{split}-00000-of-00001.parquet",
            [["Ana", "Pop", "la", "Banca", "Națională", "din", "Iași"], ["Nimic", "."]],
            [[1, 2, 0, 3, 4, 0, 5], [0, 0]],
        )
    out = tmp_path / "out"
    result = cli(["fetch", "wikiann", "-l", "ron", "-i", tmp_path, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert list(read_records(out / "test.jsonl.zst")) == [
        {
            "id": "test:1",
            "tokens": ["Ana", "Pop", "la", "Banca", "Națională", "din", "Iași"],
            "tags": ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC"],
        },
        {"id": "test:2", "tokens": ["Nimic", "."], "tags": ["O", "O"]},
    ]


def test_wikiann_converter_layout_and_bad_rows(cli, tmp_path):
    shard = wikiann_shard(tmp_path / "ro" / "validation" / "0000.parquet", [["A"], ["B", "C"]], [[0], [6, 9]])
    result = cli(["fetch", "wikiann", "-l", "ro", "-i", tmp_path, "--split", "validation"])
    assert_error(result, f"{shard}: row 2: unknown tag 9; WikiANN tags are 0-6 (O, B-PER,")
    wikiann_shard(shard, [["A"], ["B", "C"]], [[0], [6]])
    result = cli(["fetch", "wikiann", "-l", "ro", "-i", tmp_path, "--split", "validation"])
    assert_error(result, f"{shard}: row 2: 2 tokens but 1 tags")
    result = cli(
        ["fetch", "wikiann", "-l", "ro", "-i", tmp_path, "--split", "validation", "--skip-bad-lines"]
    )
    assert result.exit_code == 0
    assert jsonl(result.stdout) == [{"id": "validation:1", "tokens": ["A"], "tags": ["O"]}]


# --- sentiment ------------------------------------------------------------------------------------


def sentiment_folder(root, train='text,label\n"Bun, foarte bun.",1\nRău.,0\n'):
    folder = root / "romanian_sa"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text(train, encoding="utf-8")
    (folder / "dev.csv").write_text("text,label\nMinunat.,1.0\n", encoding="utf-8")
    (folder / "test.csv").write_text("label,text\n0,Slab.\n", encoding="utf-8")
    return folder


def test_sentiment_csvs_to_split_files(cli, tmp_path):
    sentiment_folder(tmp_path)
    out = tmp_path / "out"
    result = cli(["fetch", "sentiment", "-l", "ro", "-i", tmp_path, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert list(read_records(out / "train.jsonl.zst")) == [
        {"id": "train:1", "text": "Bun, foarte bun.", "label": "1"},
        {"id": "train:2", "text": "Rău.", "label": "0"},
    ]
    assert list(read_records(out / "validation.jsonl.zst")) == [
        {"id": "validation:1", "text": "Minunat.", "label": "1"}
    ]
    assert list(read_records(out / "test.jsonl.zst")) == [{"id": "test:1", "text": "Slab.", "label": "0"}]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("text,label\nBun.,positive\n", "train.csv:2: label 'positive' is not 0 or 1"),
        ("sentence,label\nBun.,1\n", "train.csv:1: header is ['sentence', 'label']"),
        ('text,label\n"Bun.,1\n', "train.csv:2: expected 2 comma-separated fields, found 1"),
    ],
)
def test_sentiment_bad_rows(cli, tmp_path, train, message):
    sentiment_folder(tmp_path, train)
    out = tmp_path / "out"
    assert_error(cli(["fetch", "sentiment", "-l", "ro", "-i", tmp_path, "-o", out]), message)
    assert_no_output(out) if out.exists() else None


def test_sentiment_byte_order_mark_does_not_hide_the_first_column(cli, tmp_path):
    folder = sentiment_folder(tmp_path)
    (folder / "test.csv").write_bytes(b"\xef\xbb\xbftext,label\nBun.,1\n")  # as Excel writes UTF-8 CSV
    result = cli(["fetch", "sentiment", "-l", "ro", "-i", tmp_path, "--split", "test"])
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == [{"id": "test:1", "text": "Bun.", "label": "1"}]


def test_sentiment_name_outside_the_table_with_code(cli, tmp_path):
    folder = tmp_path / "greek_sa"
    folder.mkdir()
    (folder / "test.csv").write_text("text,label\nΚαλό.,1\n", encoding="utf-8")
    result = cli(["fetch", "sentiment", "-l", "ell", "--code", "greek_sa", "-i", tmp_path, "--split", "test"])
    assert jsonl(result.stdout) == [{"id": "test:1", "text": "Καλό.", "label": "1"}]


# --- the bundled examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "counts"),
    [
        ("conceptnet", {"all": 396}),
        ("glotcc", {"all": 200}),
        ("flores", {"all": 204}),
        ("sib200", {"train": 701, "validation": 99, "test": 204}),
        ("wikiann", {"train": 300, "validation": 60, "test": 60}),
        ("sentiment", {"train": 300, "validation": 60, "test": 80}),
    ],
)
def test_every_source_reads_the_bundled_examples(cli, tmp_path, source, counts):
    out = tmp_path / "out"
    multi = "all" not in counts
    target = out if multi else out / "all.jsonl"
    result = cli(["fetch", source, "--lang", "ron", "--input", EXAMPLES_DIR / source, "-o", target])
    assert result.exit_code == 0, result.stderr
    found = {p.name.split(".")[0]: len(list(read_records(p))) for p in out.iterdir()}
    assert found == counts


def test_one_split_into_an_existing_folder(cli, tmp_path):
    sib_folder(tmp_path / "sib")
    out = tmp_path / "out"
    out.mkdir()
    result = cli(["fetch", "sib200", "-l", "ro", "-i", tmp_path / "sib", "--split", "test", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["test.jsonl.zst"]
    assert len(list(read_records(out / "test.jsonl.zst"))) == 3
    result = cli(["fetch", "flores", "-l", "ro", "-i", EXAMPLES_DIR / "flores", "-o", out])
    assert_error(result, f"-o {out} is a folder; name the output file", code=2)


def test_flores_jsonl_bad_json_is_skipped_and_counted(cli, tmp_path):
    (tmp_path / "devtest").mkdir()
    path = tmp_path / "devtest" / "ron_Latn.jsonl"
    path.write_text(
        '{"id": 1, "text": "Unu."}\n{"id": 2, "text": \n{"id": 3, "text": "Trei."}\n', encoding="utf-8"
    )
    assert_error(cli(["fetch", "flores", "-l", "ro", "-i", tmp_path]), f"{path}:2: line is not valid JSON")
    stats = tmp_path / "s.json"
    result = cli(["fetch", "flores", "-l", "ro", "-i", tmp_path, "--skip-bad-lines", "--stats", stats])
    assert [r["id"] for r in jsonl(result.stdout)] == ["devtest:1", "devtest:3"]
    assert json.loads(stats.read_text())["dropped"] == {"bad_line": 1}


def test_the_cli_offers_exactly_the_registered_sources():
    from lrltool.cli.data import FetchSource, MatchMode
    from lrltool.sources import conceptnet

    assert [s.value for s in FetchSource] == list(SOURCES)
    assert tuple(m.value for m in MatchMode) == conceptnet.MATCH_MODES
