"""The ``vos bench`` commands: one per benchmark, option parsing and printing only.

The work is in the bench modules; VosError propagates to ``handles_errors``. Options that several
benchmarks share are declared once (here and in :mod:`vos_cli.options`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from vos_cli.console import err_console, handles_errors, note, out_console
from vos_cli.errors import VosError
from vos_cli.options import (
    AggregateSingleOpt,
    CompileOpt,
    DeviceOpt,
    FlipOpt,
    PrecisionOpt,
    SizeOpt,
    WeightsOpt,
)

bench_app = typer.Typer(
    help="Benchmarks: DAVIS 2017/2016 J&F with frames/s, a YouTube-VOS submission, raw speed, "
    "whether memory stays flat with video length, or the throughput of many videos "
    "(vos segment --jobs) per process layout.\n\n"
    "Under torchrun (torchrun --nproc_per_node N --no-python vos bench davis17 ...) the "
    "sequences are split over the processes; rank 0 scores and writes the CSVs.",
    no_args_is_help=True,
)

RootOpt = Annotated[Path | None, typer.Option("--root", help="Dataset folder.")]
ResultsOpt = Annotated[
    Path | None,
    typer.Option("--results", help="Results folder (default results/<dataset>-<split>)."),
]
SequencesOpt = Annotated[
    str | None, typer.Option("--sequences", help="Only these sequences/videos: a,b,c.")
]
BenchForceOpt = Annotated[
    bool, typer.Option("--force", help="Write into a non-empty results folder.")
]
HeightOpt = Annotated[
    int | None, typer.Option("--height", help="Generated frame height (default 480).")
]
WidthOpt = Annotated[
    int | None, typer.Option("--width", help="Generated frame width (default 854).")
]
JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Also write the numbers as JSON to this file.")
]


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise VosError("--sequences names no sequence (e.g. --sequences bike-packing,blackswan)")
    return names


def _need_root(root: Path | None, dataset: str) -> Path:
    if root is None:
        raise VosError(f"--root is required: the {dataset} dataset folder")
    return root


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A transient progress bar on stderr; a no-op callback on torchrun ranks other than 0."""
    if not enabled:
        yield lambda *args: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _print_timing(timing: Any, split: str, what: str, count: int) -> None:
    from vos_cli.bench.timing import timing_table

    out_console.print(timing_table(timing, f"Speed ({split})"))
    out_console.print(
        f"{count} {what}(s), {timing.frames} frames: model {timing.model_fps:.2f} "
        f"frames/s, whole run {timing.run_fps:.2f} frames/s"
    )


# ----------------------------------------------------------------------------- DAVIS


def _size_line(groups: list[Any]) -> str:
    """``by object size: small (< 3% of the frame in the first mask) J&F ... (n), large ...``."""
    from vos_cli.bench.object_size import SMALL_OBJECT_FRACTION

    parts = [
        f"{g.name} {g.jf_mean:.3f} (J {g.j_mean:.3f}, F {g.f_mean:.3f}; {g.objects})"
        for g in groups
        if g.objects
    ]
    limit = f"{SMALL_OBJECT_FRACTION:.0%}"
    return f"J&F by object size (small: under {limit} of the frame at first): " + ", ".join(parts)


def _davis_command(dataset: str, year: str) -> Callable[..., None]:
    def command(
        root: RootOpt = None,
        split: Annotated[
            str, typer.Option("--split", help="Split list name (val, train, dev, ...) or a file.")
        ] = "val",
        results: ResultsOpt = None,
        eval_only: Annotated[
            bool,
            typer.Option("--eval-only", help="Score an existing results folder; run no model."),
        ] = False,
        sequences: SequencesOpt = None,
        weights: WeightsOpt = None,
        device: DeviceOpt = "auto",
        precision: PrecisionOpt = "auto",
        size: SizeOpt = None,
        flip: FlipOpt = False,
        aggregate_single: AggregateSingleOpt = None,
        force: BenchForceOpt = False,
        processes: Annotated[
            int | None,
            typer.Option("--processes", help="Scoring worker processes (default: all CPUs)."),
        ] = None,
    ) -> None:
        from vos_cli.bench.davis import run_davis_bench
        from vos_cli.bench.metrics.report import results_table
        from vos_cli.bench.tracking import TrackerSettings

        if eval_only and flip:
            raise VosError("--flip runs the model, which --eval-only does not")
        if eval_only and aggregate_single is not None:
            raise VosError("--[no-]aggregate-single runs the model, which --eval-only does not")
        with _progress_bar(_is_main_rank()) as progress:
            report = run_davis_bench(
                _need_root(root, dataset),
                dataset=dataset,
                split=split,
                results_dir=results,
                eval_only=eval_only,
                sequences=_split_names(sequences),
                weights=weights,
                settings=TrackerSettings(device, precision, size, flip, aggregate_single),
                force=force,
                processes=processes,
                progress=progress,
            )
        if not report.is_main:
            return
        if report.result is not None:
            out_console.print(results_table(report.result, split))
        if report.timing is not None:
            _print_timing(report.timing, split, "sequence", len(report.timing.sequences))
        if report.result is not None:
            out_console.print(
                f"J&F-Mean {report.result.jf_mean:.3f} over {len(report.result.objects)} "
                f"object(s) in {len(report.sequences)} sequence(s)"
            )
            out_console.print(_size_line(report.size_groups))
        if report.leak:
            from vos_cli.bench.leak import mean_leak

            m = mean_leak(report.leak)
            out_console.print(
                f"leak: false-positive area {m.fp_area:.3f} of the object's, missed "
                f"{m.missed:.3f}; J first quarter {m.j_first:.3f}, last quarter {m.j_last:.3f}"
            )
        if report.note:
            out_console.print(f"note: {report.note}")
        if report.files:
            out_console.print(f"wrote {', '.join(str(p) for p in report.files)}")

    command.__doc__ = (
        f"DAVIS {year}: segment a split, time it and score it (J&F, the official CSVs)."
    )
    return command


bench_app.command("davis17")(handles_errors(_davis_command("davis17", "2017")))
bench_app.command("davis16")(handles_errors(_davis_command("davis16", "2016")))


# ----------------------------------------------------------------------------- YouTube-VOS


@bench_app.command("ytvos")
@handles_errors
def ytvos(
    root: RootOpt = None,
    split: Annotated[str, typer.Option("--split", help="Split folder name.")] = "valid",
    results: ResultsOpt = None,
    sequences: SequencesOpt = None,
    all_frames: Annotated[
        bool, typer.Option("--all-frames", help="Write every frame on disk, not only meta.json's.")
    ] = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    size: SizeOpt = None,
    flip: FlipOpt = False,
    aggregate_single: AggregateSingleOpt = None,
    force: BenchForceOpt = False,
) -> None:
    """YouTube-VOS: segment a split into a submission folder and zip.

    The ground truth is withheld: upload submission.zip to the official server.
    """
    from vos_cli.bench.tracking import TrackerSettings
    from vos_cli.bench.ytvos import run_ytvos

    with _progress_bar(_is_main_rank()) as progress:
        yt = run_ytvos(
            _need_root(root, "ytvos"),
            split=split,
            results_dir=results,
            videos=_split_names(sequences),
            all_frames=all_frames,
            weights=weights,
            settings=TrackerSettings(device, precision, size, flip, aggregate_single),
            force=force,
            progress=progress,
        )
    if not yt.is_main:
        return
    for warning in yt.warnings:
        err_console.print(f"warning: {warning}")
    if yt.timing is not None:
        _print_timing(yt.timing, yt.split, "video", len(yt.videos))
    out_console.print(f"wrote {', '.join(str(p) for p in yt.files)}")


# ----------------------------------------------------------------------------- speed, memory


def _model_options(
    weights: Path | None, device: str, precision: str, size: int | None
) -> dict[str, Any]:
    """The keyword arguments naming the model and how it runs, as the speed and memory
    benchmarks take them."""
    return {"weights": weights, "device": device, "precision": precision, "size": size}


def _show(table: Any, data: dict[str, Any], json_out: Path | None) -> None:
    """A benchmark's table, and its numbers as JSON when ``--json`` asks for them."""
    from vos_cli.bench.numbers import write_json

    out_console.print(table)
    if json_out is not None:
        out_console.print(f"wrote {write_json(data, json_out)}")


@bench_app.command("prompts")
@handles_errors
def prompts(
    root: Annotated[
        Path,
        typer.Option(
            "--root",
            help="The shared data folder holding coco-extra, coco-person, weizmann-horse and "
            "davis16-train (their held-out objects are scored).",
        ),
    ] = Path("../shared/data"),
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Mask maker weights (default: the one shipped with vos)."),
    ] = None,
    clicks: Annotated[
        int, typer.Option("--clicks", help="Corrective clicks simulated after the box.")
    ] = 3,
    max_items: Annotated[
        int, typer.Option("--max-items", help="Only the first N objects of each source (0: all).")
    ] = 0,
    threads: Annotated[
        int, typer.Option("--threads", help="CPU threads for the network (0: torch's default).")
    ] = 2,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    json_out: JsonOpt = None,
) -> None:
    """The mask maker (vos mask): mean IoU from a box and after corrective clicks, s per box."""
    from vos_cli.prompts.bench import prompt_table, run_prompt_bench, summary_dict

    summary, scores = run_prompt_bench(
        root,
        weights,
        max_items=max_items,
        max_clicks=clicks,
        threads=threads,
        device=device,
        progress=lambda done, total: note(f"{done}/{total} objects") if done % 25 == 0 else None,
    )
    _show(prompt_table(summary, threads), summary_dict(summary, scores), json_out)


@bench_app.command("speed")
@handles_errors
def speed(
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Video or frame folder (default: a generated clip)."),
    ] = None,
    frames: Annotated[int, typer.Option("--frames", help="Frames to time.")] = 100,
    height: HeightOpt = None,
    width: WidthOpt = None,
    objects: Annotated[str, typer.Option("--objects", help="Object counts to time.")] = "1,3,5",
    weights: WeightsOpt = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone",
            help="lite0 | lite1 | lite2 | resnet101; random weights when no --weights.",
        ),
    ] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    size: SizeOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps first.")] = 5,
    compile_: CompileOpt = False,
    flip: FlipOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Frames per second (model only and end to end) and peak memory, per object count."""
    from vos_cli.bench import speed as sp

    report = sp.run_speed_bench(
        **_model_options(weights, device, precision, size),
        source=source,
        frames=frames,
        height=height,
        width=width,
        objects=sp.parse_objects(objects),
        backbone=backbone,
        warmup=warmup,
        compile=compile_,
        flip=flip,
        progress=note,
    )
    _show(sp.speed_table(report), report.to_dict(), json_out)


@bench_app.command("train")
@handles_errors
def train(
    config: Annotated[
        str,
        typer.Option("--config", help="A training config: a .toml file or a shipped name."),
    ] = "lite0-cpu",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set train.threads=2"),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Steps to time.")] = 8,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps first.")] = 2,
    json_out: JsonOpt = None,
) -> None:
    """Seconds per training step of a config (its own batches, loaded first) and peak memory."""
    from vos_cli.bench import train_speed as ts

    report = ts.run_train_bench(config, set_ or [], steps=steps, warmup=warmup)
    _show(ts.train_speed_table(report), report.to_dict(), json_out)


@bench_app.command("memory")
@handles_errors
def memory(
    lengths: Annotated[
        str, typer.Option("--lengths", help="Video lengths to compare, the first the reference.")
    ] = "100,10000",
    height: HeightOpt = None,
    width: WidthOpt = None,
    objects: Annotated[int, typer.Option("--objects", help="Object count.")] = 1,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    size: SizeOpt = None,
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Also have vos segment write an overlay video.")
    ] = False,
    json_out: JsonOpt = None,
) -> None:
    """Whether vos segment streams: its peak memory on a short and a long generated video.

    Prints a PASSED/FAILED line; the exit code is 0 either way, since a failed check is a
    finding to report, not a usage error.
    """
    from vos_cli.bench import memory as mem

    report = mem.run_memory_bench(
        mem.parse_lengths(lengths),
        **_model_options(weights, device, precision, size),
        height=mem.DEFAULT_HEIGHT if height is None else height,
        width=mem.DEFAULT_WIDTH if width is None else width,
        objects=objects,
        overlay=overlay,
        progress=note,
    )
    _show(mem.memory_table(report), report.to_dict(), json_out)
    out_console.print(report.verdict())


# ----------------------------------------------------------------------------- many videos


@bench_app.command("jobs")
@handles_errors
def jobs(
    clips: Annotated[int, typer.Option("--clips", help="Generated clips to segment.")] = 8,
    frames: Annotated[int, typer.Option("--frames", help="Frames per clip.")] = 60,
    height: Annotated[int, typer.Option("--height", help="Clip height.")] = 240,
    width: Annotated[int, typer.Option("--width", help="Clip width.")] = 426,
    objects: Annotated[int, typer.Option("--objects", help="Objects per clip.")] = 1,
    layouts: Annotated[
        str,
        typer.Option(
            "--layouts",
            help="PROCESSESxTHREADS runs to compare, in order (processes > 1 through torchrun).",
        ),
    ] = "1x2,2x1",
    weights: WeightsOpt = None,
    device: DeviceOpt = "cpu",
    precision: PrecisionOpt = "auto",
    size: SizeOpt = None,
    work: Annotated[
        Path | None,
        typer.Option("--work", help="Keep the clips and outputs in this new folder."),
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """Throughput of vos segment --jobs on generated clips: P processes x T threads each.

    Needs the machine to itself: anything else running skews the comparison.
    """
    from vos_cli.bench import jobs as jb

    report = jb.run_jobs_bench(
        clips=clips,
        frames=frames,
        height=height,
        width=width,
        objects=objects,
        layouts=jb.parse_layouts(layouts),
        weights=weights,
        device=device,
        precision=precision,
        size=size,
        work=work,
        progress=note,
    )
    _show(jb.jobs_table(report), report.to_dict(), json_out)
