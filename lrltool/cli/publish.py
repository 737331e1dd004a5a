"""``push``: publish a train-adapter run on the Hugging Face hub (:mod:`lrltool.lm.publish`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lrltool import ui
from lrltool.cli.app import command
from lrltool.cli.options import QuietOpt


@command(
    "push",
    examples=[
        "lrltool push runs/seq_bn-glotcc me/xlmr-mlt-seq_bn-glotcc --dry-run",
        "lrltool push runs/seq_bn-glotcc me/xlmr-mlt-seq_bn-glotcc --results results.jsonl",
    ],
)
def push_cli(
    run: Annotated[Path, typer.Argument(help="A finished train-adapter run folder.", show_default=False)],
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
            "--results", help="Metric records (eval's) whose perplexity of this run goes on the card."
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
    """Upload a train-adapter run's adapter (with its AdapterHub card and training.json) to the hub."""
    from lrltool.lm.publish import push

    ui.configure(quiet=quiet)
    files = push(
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
