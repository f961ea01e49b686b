"""The ``vos bench`` command: option parsing and printing only; the work is in the bench modules.

Registered by ``vos_cli.cli`` as ``app.command("bench")(handles_errors(bench))``. This module
imports ``vos_cli.cli`` only inside the function (for its consoles), so cli.py can import it at
the top without an import cycle. VosError is left to propagate to ``handles_errors``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from vos_cli.errors import VosError
from vos_cli.inference.adapt_config import DEFAULT_ADAPT_STEPS, adapt_config

DATASETS = ("davis17", "davis16", "ytvos", "speed", "memory")


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise VosError("--sequences names no sequence (e.g. --sequences bike-packing,blackswan)")
    return names


def _refuse(dataset: str, given: dict[str, bool], where: str) -> None:
    used = [name for name, on in given.items() if on]
    if used:
        raise VosError(
            f"{', '.join(used)} {'applies' if len(used) == 1 else 'apply'} to {where}, not to `vos bench {dataset}`"
        )


@contextmanager
def _progress_bar(console: Any, enabled: bool) -> Iterator[Any]:
    """A transient progress bar on stderr; a no-op callback on torchrun ranks other than 0."""
    if not enabled:
        yield lambda *args: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def bench(
    dataset: Annotated[str, typer.Argument(help="davis17 | davis16 | ytvos | speed | memory")],
    root: Annotated[
        Path | None, typer.Option("--root", help="Dataset folder (davis17, davis16, ytvos).")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split", help="Split list name: val (default), train, dev, ...; ytvos: valid."
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Results folder (default results/<dataset>-<split>)."),
    ] = None,
    eval_only: Annotated[
        bool, typer.Option("--eval-only", help="Score an existing results folder; run no model.")
    ] = False,
    sequences: Annotated[
        str | None, typer.Option("--sequences", help="Only these sequences/videos: a,b,c.")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Weights file (default: the model shipped with vos)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16")
    ] = "auto",
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Network short side (default: the model's own; 0 = the video's resolution).",
        ),
    ] = None,
    adapt: Annotated[
        int | None,
        typer.Option(
            "--adapt",
            help="davis17, davis16, ytvos: first-frame adaptation steps per video, 0 = off "
            f"(default {DEFAULT_ADAPT_STEPS}, as vos segment).",
        ),
    ] = None,
    flip: Annotated[
        bool,
        typer.Option(
            "--flip",
            help="davis17, davis16, ytvos, speed: also track the mirrored video and average "
            "the two (as vos segment --flip).",
        ),
    ] = False,
    aggregate_single: Annotated[
        bool | None,
        typer.Option(
            "--aggregate-single/--no-aggregate-single",
            help="davis17, davis16, ytvos: pass a lone object through the multi-object "
            "aggregation before it is fed back and written, as the authors do (default: on for "
            "davis17 and ytvos, off for davis16; see vos_cli/bench/protocol.py).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty results folder.")
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option("--processes", help="Scoring worker processes (default: all CPUs)."),
    ] = None,
    all_frames: Annotated[
        bool,
        typer.Option(
            "--all-frames", help="ytvos: write every frame on disk, not only meta.json's."
        ),
    ] = False,
    source: Annotated[
        Path | None,
        typer.Option("--source", help="speed: video or frame folder (default: generated clip)."),
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", help="speed: frames to time (default 100).")
    ] = None,
    lengths: Annotated[
        str | None,
        typer.Option("--lengths", help="memory: video lengths to compare (default 100,10000)."),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option("--height", help="speed, memory: generated frame height (default 480)."),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", help="speed, memory: generated frame width (default 854)."),
    ] = None,
    objects: Annotated[
        str | None,
        typer.Option(
            "--objects", help="speed: object counts (default 1,3,5); memory: one (default 1)."
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            "--backbone", help="speed: lite0 | resnet101; random weights when no --weights."
        ),
    ] = None,
    warmup: Annotated[
        int | None, typer.Option("--warmup", help="speed: untimed steps first (default 5).")
    ] = None,
    compile_: Annotated[
        bool, typer.Option("--compile", help="speed: torch.compile the backbone.")
    ] = False,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="speed, memory: also write the numbers as JSON."),
    ] = None,
    overlay: Annotated[
        bool,
        typer.Option("--overlay", help="memory: also have vos segment write an overlay video."),
    ] = False,
) -> None:
    """Benchmark: DAVIS 2017/2016 J&F with frames/s, a YouTube-VOS submission, raw speed, or whether memory stays flat with video length.

    Under torchrun (torchrun --nproc_per_node N --no-python vos bench ...) the sequences are split over the processes; rank 0 scores and writes the CSVs.
    """  # noqa: E501 - typer shows docstring line breaks as they are
    from vos_cli.cli import err_console, out_console

    if dataset not in DATASETS:
        raise VosError(f"unknown benchmark {dataset!r}; choose one of {', '.join(DATASETS)}")
    speed_only = {
        "--source": source is not None,
        "--frames": frames is not None,
        "--backbone": backbone is not None,
        "--warmup": warmup is not None,
        "--compile": compile_,
    }
    memory_only = {"--lengths": lengths is not None, "--overlay": overlay}
    not_memory = {"--flip": flip}
    generated = {
        "--height": height is not None,
        "--width": width is not None,
        "--objects": objects is not None,
        "--json": json_out is not None,
    }
    dataset_only = {
        "--root": root is not None,
        "--split": split is not None,
        "--results": results is not None,
        "--eval-only": eval_only,
        "--sequences": sequences is not None,
        "--force": force,
        "--processes": processes is not None,
        "--all-frames": all_frames,
        "--adapt": adapt is not None,
        "--[no-]aggregate-single": aggregate_single is not None,
    }
    main_rank = os.environ.get("RANK", "0") in ("", "0")

    if dataset == "memory":
        _refuse(dataset, dataset_only, "dataset benchmarks")
        _refuse(dataset, speed_only, "`vos bench speed`")
        _refuse(dataset, not_memory, "`vos bench speed` and the dataset benchmarks")
        _memory(
            lengths, height, width, objects, weights, size, device, precision, overlay, json_out
        )
        return

    if dataset == "speed":
        _refuse(dataset, dataset_only, "dataset benchmarks")
        _refuse(dataset, memory_only, "`vos bench memory`")
        from vos_cli.bench import speed as sp

        report = sp.run_speed_bench(
            source=source,
            frames=sp.DEFAULT_FRAMES if frames is None else frames,
            height=height,
            width=width,
            objects=sp.DEFAULT_OBJECTS if objects is None else sp.parse_objects(objects),
            weights=weights,
            backbone=backbone,
            device=device,
            precision=precision,
            size=size,
            warmup=sp.DEFAULT_WARMUP if warmup is None else warmup,
            compile=compile_,
            flip=flip,
            progress=lambda message: err_console.print(f"note: {message}"),
        )
        out_console.print(sp.speed_table(report))
        if json_out is not None:
            out_console.print(f"wrote {sp.write_speed_json(report, json_out)}")
        return

    _refuse(dataset, speed_only, "`vos bench speed`")
    _refuse(dataset, memory_only, "`vos bench memory`")
    _refuse(dataset, generated, "`vos bench speed` and `vos bench memory`")
    if root is None:
        raise VosError(f"--root is required: the {dataset} dataset folder")
    names = _split_names(sequences)

    if dataset == "ytvos":
        _refuse(dataset, {"--processes": processes is not None}, "DAVIS scoring")
        _refuse(
            dataset,
            {"--eval-only": eval_only},
            "DAVIS (YouTube-VOS ground truth is withheld: upload submission.zip to the official server)",
        )
        from vos_cli.bench.davis import timing_table
        from vos_cli.bench.ytvos import run_ytvos

        with _progress_bar(err_console, main_rank) as progress:
            yt = run_ytvos(
                root,
                split=split or "valid",
                results_dir=results,
                videos=names,
                all_frames=all_frames,
                weights=weights,
                device=device,
                precision=precision,
                size=size,
                adapt=adapt_config(adapt),
                flip=flip,
                aggregate_single=aggregate_single,
                force=force,
                progress=progress,
            )
        if not yt.is_main:
            return
        for warning in yt.warnings:
            err_console.print(f"warning: {warning}")
        if yt.timing is not None:
            out_console.print(timing_table(yt.timing, f"Speed ({yt.split})"))
            out_console.print(
                f"{len(yt.videos)} video(s), {yt.timing.frames} frames: model "
                f"{yt.timing.model_fps:.2f} frames/s, whole run {yt.timing.run_fps:.2f} frames/s"
            )
        out_console.print(f"wrote {', '.join(str(p) for p in yt.files)}")
        return

    _refuse(dataset, {"--all-frames": all_frames}, "ytvos")
    from vos_cli.bench.davis import run_davis_bench, timing_table
    from vos_cli.metrics import results_table

    if eval_only and adapt is not None:
        raise VosError("--adapt runs the model, which --eval-only does not")
    if eval_only and flip:
        raise VosError("--flip runs the model, which --eval-only does not")
    if eval_only and aggregate_single is not None:
        raise VosError("--[no-]aggregate-single runs the model, which --eval-only does not")
    the_split = split or "val"
    with _progress_bar(err_console, main_rank) as progress:
        report = run_davis_bench(
            root,
            dataset=dataset,
            split=the_split,
            results_dir=results,
            eval_only=eval_only,
            sequences=names,
            weights=weights,
            device=device,
            precision=precision,
            size=size,
            adapt=adapt_config(adapt),
            flip=flip,
            aggregate_single=aggregate_single,
            force=force,
            processes=processes,
            progress=progress,
        )
    if not report.is_main:
        return
    if report.result is not None:
        out_console.print(results_table(report.result, the_split))
    if report.timing is not None:
        t = report.timing
        out_console.print(timing_table(t, f"Speed ({the_split})"))
        out_console.print(
            f"{len(t.sequences)} sequence(s), {t.frames} frames: model {t.model_fps:.2f} "
            f"frames/s, whole run {t.run_fps:.2f} frames/s"
        )
    if report.result is not None:
        out_console.print(
            f"J&F-Mean {report.result.jf_mean:.3f} over {len(report.result.objects)} object(s) "
            f"in {len(report.sequences)} sequence(s)"
        )
    if report.note:
        out_console.print(f"note: {report.note}")
    if report.files:
        out_console.print(f"wrote {', '.join(str(p) for p in report.files)}")


def _memory(
    lengths: str | None,
    height: int | None,
    width: int | None,
    objects: str | None,
    weights: Path | None,
    size: int | None,
    device: str,
    precision: str,
    overlay: bool,
    json_out: Path | None,
) -> None:
    """``vos bench memory``: the table and a PASSED/FAILED line; exit code 0 either way, since
    a failed check is a finding to report, not a usage error."""
    from vos_cli.bench import memory as mem
    from vos_cli.bench.speed import parse_objects, write_json
    from vos_cli.cli import err_console, out_console

    count = mem.DEFAULT_OBJECTS
    if objects is not None:
        counts = parse_objects(objects)
        if len(counts) != 1:
            raise VosError("--objects takes one count for `vos bench memory` (e.g. --objects 3)")
        count = counts[0]
    report = mem.run_memory_bench(
        mem.DEFAULT_LENGTHS if lengths is None else mem.parse_lengths(lengths),
        height=mem.DEFAULT_HEIGHT if height is None else height,
        width=mem.DEFAULT_WIDTH if width is None else width,
        objects=count,
        weights=weights,
        size=size,
        device=device,
        precision=precision,
        overlay=overlay,
        progress=lambda message: err_console.print(f"note: {message}"),
    )
    out_console.print(mem.memory_table(report))
    if json_out is not None:
        out_console.print(f"wrote {write_json(report.to_dict(), json_out)}")
    out_console.print(report.verdict())
