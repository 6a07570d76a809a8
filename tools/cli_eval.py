"""The offline evaluation commands: `eval recommend` (a dataset split), `eval suite` (YAML cases), and `tune`
(fit the retrieval fusion to a dataset)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from interestlens.agent.config import Settings
from interestlens.agent.errors import InvalidInputError
from interestlens.tools.cli_context import JsonOpt, emit, split_csv, state, wants_json

eval_app = typer.Typer(help="Offline evaluation (see evals/).", no_args_is_help=True)

ProtocolOpt = Annotated[str, typer.Option("--protocol", help="full | sampled")]
FoldsOpt = Annotated[int, typer.Option("--folds", help="K of the cross-validation over users.")]
TextFieldsOpt = Annotated[
    str | None, typer.Option("--text-fields", help="Metadata fields appended to item text (comma-separated).")
]


def _dataset_dir(data: Path) -> Path:
    if not data.is_dir():
        raise InvalidInputError(f"--data {data}: not a directory")
    return data


def _with_text_fields(settings: Settings, text_fields: str | None) -> Settings:
    if text_fields is None:
        return settings
    return settings.model_copy(update={"catalog": {"item_text_fields": split_csv(text_fields)}})


@eval_app.command("recommend")
def eval_recommend(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset directory.")],
    split: Annotated[str, typer.Option("--split")] = "dev",
    protocol: ProtocolOpt = "full",
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many users.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    systems: Annotated[str | None, typer.Option("--systems", help="Comma-separated system names.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    fusion: Annotated[
        str, typer.Option("--fusion", help="cv (fit by cross-validation over users) | linear | PATH of a model")
    ] = "cv",
    folds: FoldsOpt = 5,
    text_fields: TextFieldsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run the recommendation evaluation on a dataset split."""
    if protocol not in ("full", "sampled"):
        raise InvalidInputError(f"--protocol must be full or sampled, not {protocol!r}")
    _dataset_dir(data)
    # The evaluation stack (rankers, metrics) is loaded only by the commands that run it.
    from interestlens.evals.harness import run_recommend_eval

    result = run_recommend_eval(
        data_dir=data,
        split=split,
        protocol=protocol,
        limit=limit,
        seed=seed,
        systems=split_csv(systems) or None,
        out_dir=out,
        settings=_with_text_fields(state(ctx).settings(), text_fields),
        progress=True,
        command="interestlens " + " ".join(sys.argv[1:]),
        fusion=fusion,
        folds=folds,
    )
    emit(ctx, result, json_)


def tune_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (catalog, cases, interactions).")],
    split: Annotated[str, typer.Option("--split", help="Cases to fit on (never 'test').")] = "dev",
    protocol: ProtocolOpt = "full",
    out: Annotated[Path | None, typer.Option("--out", help="Model file (default: <store>/fusion.json).")] = None,
    folds: FoldsOpt = 5,
    text_fields: TextFieldsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Fit the retrieval fusion (LambdaRank over every signal) to your catalog and behaviour, and store it."""
    _dataset_dir(data)
    from interestlens.evals.fitting import tune

    settings = _with_text_fields(state(ctx).settings(), text_fields)
    report = tune(data, split, protocol, settings=settings, out_path=out, folds=folds)
    if json_:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        typer.echo(f"fusion fit on {report['n_cases']} cases of {report['n_users']} users -> {report['out']}")
        for name, value in report["cross_validated_offline_ndcg@10"].items():
            typer.echo(f"  {name:<28} ndcg@10 {value:.4f}")
        mmr = report["mmr_lambda_cv"]
        d = mmr["cv_minus_setting"]
        typer.echo(f"MMR lambda, cross-validated: folds chose {mmr['folds_chose']}, ndcg@10 {mmr['cv_ndcg@10']:.4f} "
                   f"against {mmr['setting_ndcg@10']:.4f} at the setting {mmr['setting']} "
                   f"({d['mean_diff']:+.4f} [{d['diff_ci_lo']:+.4f}, {d['diff_ci_hi']:+.4f}], p {d['p_value']:.2f})")


@eval_app.command("suite")
def eval_suite(
    ctx: typer.Context,
    suite: Annotated[
        str | None, typer.Argument(help="A packaged suite's name (hostile, decomposition, ...) or a YAML file.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the report here.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (for CI systems).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-case progress on stderr.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the packaged suites and exit.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Run an evaluation suite: one progress line per case on stderr, a table (or --json) on stdout."""
    from interestlens.evals.suite import run_suite
    from interestlens.evals.suite_cases import load_suite, packaged_suites, suite_name

    as_json = wants_json(ctx, json_)
    if list_:
        names = {suite_name(n): len(load_suite(suite_name(n))) for n in packaged_suites()}
        if as_json:
            typer.echo(json.dumps(names, indent=2))
        else:
            for name, n in names.items():
                typer.echo(f"{name:<16} {n} cases")
        return
    if suite is None:
        raise InvalidInputError("name a suite (see `interestlens eval suite --list`) or give a YAML file")
    report = run_suite(
        suite, state(ctx).settings(), out_path=out, print_table=not as_json, progress=not quiet, junit_path=junit
    )
    if as_json:
        emit(ctx, report, True)
    if not report.passed:  # a failing suite fails the command (CI gates on it)
        raise typer.Exit(1)
