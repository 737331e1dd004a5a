"""``lrltool report``: tables and plots from metric records (what ``eval`` writes; :mod:`lrltool.records`).

Reads metric records from files, globs and stdin; run folders (``log.jsonl``, ``training.json``) for loss
curves, named with ``--runs`` or found through the records' ``adapter`` field. Builds:

- a pseudo-perplexity table per model: language x (base, each method/source, full), one PPPL metric
  (``pppl_mean`` by default, the paper's number), each cell with its change against the base model;
- a table per model and downstream task with the task's headline metric (F1-type): language x method,
  mean ± sd over seeds (an ``aggregate: "mean"`` record is used when present, else the per-seed records are
  averaged; sd is the sample sd, n-1), each cell with its change against the paper's baseline (method
  ``base``, task_method ``adapter``: a task adapter without a language adapter). Prompting rows
  (task_method ``prompt-*``, another model) are shown beside the adapters of every table of their task;
- averages over languages, split into languages seen and unseen in the model's pre-training data
  (``languages.tsv``), and the correlation of each method's gain with that data size (Spearman, Pearson);
- where one method was trained on several amounts of adaptation data (one adapter folder each, sizes from
  its ``training.json`` ``data.bytes`` or ``data.tokens``): value and gain against that size;
- with ``--compare-paper``, the paper's published numbers (``data/paper_numbers.json``; docs/design.md,
  "Paper numbers (`report --compare-paper`)").

Writes (with an output folder) ``report.md``, ``results.csv`` and ``plots/*.png``, all together or not at all:
they are built in a temporary folder and renamed into place, ``report.md`` last.

Refuses: a line that is not a metric record (one error naming file:line), an F1-type value outside [0, 1]
(records hold fractions), a non-positive perplexity, a glob that matches nothing, a folder that is neither
a metrics file nor a run folder, and an input with no metric records at all (unless run folders are given).

The modules, in import order: ``names`` (language and model names), ``load`` (records and run folders in),
``tables`` (tables, cells, averages), ``paper`` (the paper's numbers), ``stats`` (correlations, data-size
series), ``settings`` (settings behind a table, and disagreements), ``build`` (:class:`Report`), ``render``
(terminal, markdown, CSV), ``plots`` (matplotlib), ``write`` (the files; the command's core).
"""

from lrltool.report.build import Report, build_report
from lrltool.report.load import Entry, LossCurve, expand_inputs, load_metric_records, read_loss_curve
from lrltool.report.names import language_group, language_name, pretraining_gb, short_model
from lrltool.report.paper import PaperComparison, attach_paper_numbers, paper_citation, paper_numbers
from lrltool.report.render import (
    cell_text,
    gb_text,
    render_csv,
    render_markdown,
    render_terminal,
)
from lrltool.report.stats import Correlation, SizeCorrelation, SizeSeries, pearson, spearman
from lrltool.report.tables import Average, Cell, Column, PaperNumber, Table, build_tables, gain
from lrltool.report.write import report_metrics, write_report

__all__ = [
    "Average",
    "Cell",
    "Column",
    "Correlation",
    "Entry",
    "LossCurve",
    "PaperComparison",
    "PaperNumber",
    "Report",
    "SizeCorrelation",
    "SizeSeries",
    "Table",
    "attach_paper_numbers",
    "build_report",
    "build_tables",
    "cell_text",
    "expand_inputs",
    "gain",
    "gb_text",
    "language_group",
    "language_name",
    "load_metric_records",
    "paper_citation",
    "paper_numbers",
    "pearson",
    "pretraining_gb",
    "read_loss_curve",
    "render_csv",
    "render_markdown",
    "render_terminal",
    "report_metrics",
    "short_model",
    "spearman",
    "write_report",
]
