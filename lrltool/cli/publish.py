"""``push``: publish a train-adapter run (:mod:`lrltool.lm.publish`) or a finetune run
(:mod:`lrltool.downstream.publish`) on the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrltool import ui
from lrltool.cli.group import command
from lrltool.cli.options import QuietOpt


@command(
    "push",
    examples=[
        "lrltool push runs/seq_bn-glotcc me/xlmr-mlt-seq_bn-glotcc --dry-run",
        "lrltool push runs/seq_bn-glotcc me/xlmr-mlt-seq_bn-glotcc --results results.jsonl",
        "lrltool push runs/tc-seq_bn-glotcc/seed-1 me/xlmr-mlt-sib200 --results results.jsonl --dry-run",
    ],
)
def push_cli(
    run: Annotated[
        Path,
        typer.Argument(
            help="A finished train-adapter or finetune run folder (of finetune --seeds: one RUN/seed-N).",
            show_default=False,
        ),
    ],
    repo: Annotated[str, typer.Argument(help="Hub repository id (owner/name); created if missing.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the files that would be uploaded; upload nothing.")
    ] = False,
    public: Annotated[
        bool, typer.Option("--public", help="Create a public repository (default: private).")
    ] = False,
    results: Annotated[
        list[str] | None,
        typer.Option(
            "--results",
            help="Metric records (eval's): this run's perplexity, or its test scores, go on the card.",
        ),
    ] = None,
    license_: Annotated[
        str, typer.Option("--license", help="The license the card states (a hub license id).")
    ] = "apache-2.0",
    token: Annotated[
        str | None, typer.Option("--token", help="Hub token (default: HF_TOKEN or 'hf auth login').")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Upload a run's adapter or model (with its hub model card and training.json) to the hub: a
    train-adapter run (language adapter) or one finetune run (task adapter and head, or a full model)."""
    from lrltool.downstream.publish import is_task_run, push_task_run
    from lrltool.lm.publish import push

    ui.configure(quiet=quiet)
    files = (push_task_run if is_task_run(run) else push)(
        run=run,
        repo=repo,
        public=public,
        dry_run=dry_run,
        results=results or [],
        license_=license_,
        token=token,
    )
    if dry_run:
        for name in files:
            typer.echo(name)
        ui.info(
            f"push --dry-run: {len(files)} files would go to {repo} ({'public' if public else 'private'})"
        )
