"""The ``vos`` command line: parses options, calls library functions, reports.

Every command turns a :class:`~vos_cli.errors.VosError` into a one-line ``error:`` message and exit
code 2 (bad input) or 1 (a failure while working, e.g. a full disk), and Ctrl-C, SIGTERM or SIGHUP
into exit code 128 + the signal (130, 143, 129) after the work function has closed its outputs.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from vos_cli.bench.command import bench_app
from vos_cli.console import err_console, handles_errors, out_console
from vos_cli.errors import VosError
from vos_cli.options import (
    CompileOpt,
    DeviceOpt,
    FlipOpt,
    ForceOpt,
    KeepsArgsCommand,
    PrecisionOpt,
    SizeOpt,
    WeightsOpt,
)
from vos_cli.signals import interrupt_exit_code, signal_name, stop_signal

app = typer.Typer(
    name="vos",
    help="Cut objects out of videos: A-GAME video object segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="Inspect and convert weights files.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
app.add_typer(bench_app, name="bench")


def package_version() -> str:
    """The installed distribution's version; the source tree's own when vos is not installed."""
    from importlib import metadata

    try:
        return metadata.version("vos-cli")
    except metadata.PackageNotFoundError:
        from vos_cli import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"vos {package_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass


BoxOpt = Annotated[
    list[str],
    typer.Option(
        "--box",
        help="An object's box X0,Y0,X1,Y1 in frame pixels (x right, y down); one object per "
        "--box, ids 1, 2, ... in the order given.",
        metavar="X0,Y0,X1,Y1",
    ),
]
PointOpt = Annotated[
    list[str],
    typer.Option(
        "--point",
        help="A click X,Y on the object of the last --box before it (no box: an object made "
        "of clicks); N:X,Y names object N.",
        metavar="[N:]X,Y",
    ),
]
BgPointOpt = Annotated[
    list[str],
    typer.Option(
        "--bg-point",
        help="A click X,Y on something that must stay out of the object (as --point).",
        metavar="[N:]X,Y",
    ),
]


@app.command(cls=KeepsArgsCommand)
@handles_errors
def mask(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="Image, video or folder of frames.")],
    out: Annotated[Path, typer.Option("--out", help="The mask to write (.png, DAVIS palette).")],
    box: BoxOpt = None,  # type: ignore[assignment]
    point: PointOpt = None,  # type: ignore[assignment]
    bg_point: BgPointOpt = None,  # type: ignore[assignment]
    frame: Annotated[
        int, typer.Option("--frame", help="The frame of a video or frame folder (0 = first).")
    ] = 0,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview/--no-preview", help="Also write OUT-preview.png: the frame, mask over it."
        ),
    ] = True,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Mask maker weights (default: the one shipped with vos)."),
    ] = None,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
) -> None:
    """Make a first-frame mask from a box or a few clicks per object."""
    from vos_cli.prompts.command import make_mask_file, prompts_from_cli

    objects = prompts_from_cli(ctx.meta.get("vos_raw_args"), box, point, bg_point)
    result = make_mask_file(
        source,
        objects,
        out,
        frame=frame,
        preview=preview,
        weights=weights,
        device=device,
        force=force,
    )
    for warning in result.warnings:
        err_console.print(f"warning: {warning}")
    extra = f" and {result.preview}" if result.preview is not None else ""
    out_console.print(
        f"wrote {result.out}{extra}: {len(objects)} object(s), network {result.seconds:.2f} s"
    )


@app.command()
@handles_errors
def annotate(
    source: Annotated[Path, typer.Argument(help="Video file or folder of frames.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the mask and the outputs (default: VIDEO_vos/)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 0,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the address, do not open a browser.")
    ] = False,
    mask: Annotated[
        str | None,
        typer.Option("--mask", help="A mask to fix: PATH (frame 0) or N:PATH (frame N)."),
    ] = None,
    weights: WeightsOpt = None,
    mask_weights: Annotated[
        Path | None,
        typer.Option("--mask-weights", help="Mask maker weights (default: the shipped one)."),
    ] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Open a page in your browser to point at the objects, check the mask and track."""
    from vos_cli.app.server import serve
    from vos_cli.app.workspace import Workspace
    from vos_cli.segment import parse_mask_option

    workspace = Workspace(
        source,
        out,
        mask=parse_mask_option(mask) if mask else None,
        weights=weights,
        mask_weights=mask_weights,
        device=device,
    )
    serve(workspace, port, open_browser=not no_browser, say=lambda m: err_console.print(m))


@app.command(cls=KeepsArgsCommand)
@handles_errors
def segment(
    ctx: typer.Context,
    source: Annotated[
        Path | None, typer.Argument(help="Video file or folder of frames (or give --jobs).")
    ] = None,
    mask: Annotated[
        list[str],
        typer.Option(
            "--mask",
            help="Mask of the objects: PATH for frame 0, or N:PATH for frame N (repeatable).",
        ),
    ] = None,  # type: ignore[assignment]
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for per-frame palette PNGs.")
    ] = None,
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Write an overlay video (.mp4, H.264).")
    ] = None,
    cutout: Annotated[
        Path | None,
        typer.Option(
            "--cutout",
            help="Write the video's pixels with alpha = the objects: .webm (VP9 with alpha), "
            ".mov (ProRes 4444 with alpha) or a folder (RGBA PNGs).",
        ),
    ] = None,
    matte: Annotated[
        Path | None,
        typer.Option(
            "--matte", help="Write a grayscale video (.mp4, H.264), white on the objects."
        ),
    ] = None,
    objects: Annotated[
        str | None,
        typer.Option(
            "--objects",
            help="Object ids the cut-out and matte show, e.g. 1,3 (default: all). The masks "
            "and the overlay keep every object.",
            metavar="IDS",
        ),
    ] = None,
    feather: Annotated[
        int,
        typer.Option(
            "--feather",
            help="Soften the cut-out's and matte's edges over 2*PX+1 pixels (0: the masks "
            "exactly).",
            metavar="PX",
        ),
    ] = 0,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    size: SizeOpt = None,
    force: ForceOpt = False,
    flip: FlipOpt = False,
    compile: CompileOpt = False,
    jobs: Annotated[
        Path | None,
        typer.Option(
            "--jobs",
            help="Segment many videos: a CSV with a row per video (columns source, mask, out, "
            "overlay, cutout, matte, objects, feather, size; see docs/batch.md). Jobs complete "
            "from an earlier run are skipped; under torchrun the processes share the rows.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="With --jobs: the per-video report (default: JOBS-report.csv)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="With --jobs: threads per process (default: the cores shared out over the "
            "processes on this machine).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a run that was stopped (Ctrl-C, kill, full disk) from the masks in "
            "its --out folder; give the same inputs and options. Videos are encoded again.",
        ),
    ] = False,
    box: BoxOpt = None,  # type: ignore[assignment]
    point: PointOpt = None,  # type: ignore[assignment]
    bg_point: BgPointOpt = None,  # type: ignore[assignment]
    mask_weights: Annotated[
        Path | None,
        typer.Option(
            "--mask-weights",
            help="With --box/--point: the mask maker's weights (default: the shipped one).",
        ),
    ] = None,
) -> None:
    """Follow the objects of a first-frame mask (or of boxes and clicks on frame 0) through a
    video (or many: --jobs)."""
    prompted = bool(box or point or bg_point)
    if jobs is not None and prompted:
        raise VosError("--box, --point and --bg-point are for one video, not --jobs")
    if mask_weights is not None and not prompted:
        raise VosError("--mask-weights goes with --box or --point")
    if jobs is not None:
        if resume:
            raise VosError("--resume is for one video; --jobs skips finished jobs by itself")
        from vos_cli.jobs.command import segment_jobs

        segment_jobs(
            jobs,
            per_video={
                "SOURCE": source,
                "--mask": mask,
                "--out": out,
                "--overlay": overlay,
                "--cutout": cutout,
                "--matte": matte,
            },
            options={
                "weights": weights,
                "device": device,
                "precision": precision,
                "size": size,
                "objects": objects,
                "feather": feather,
                "flip": flip,
                "compile": compile,
            },
            report=report,
            force=force,
            threads=threads,
        )
        return
    if source is None:
        raise VosError("give a video (vos segment VIDEO --mask MASK) or a jobs file (--jobs)")
    for option, value in (("--report", report), ("--threads", threads)):
        if value is not None:
            raise VosError(f"{option} goes with --jobs")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from vos_cli.segment import (
        SegmentRequest,
        parse_mask_option,
        parse_objects_option,
        segment_video,
    )

    first_mask = None
    if prompted:
        from vos_cli.prompts.command import (
            empty_objects,
            make_label_map,
            prompts_from_cli,
            read_frame,
        )

        prompt_objects = prompts_from_cli(ctx.meta.get("vos_raw_args"), box, point, bg_point)
        if not prompt_objects:
            raise VosError("no object given: pass --box X0,Y0,X1,Y1 or --point X,Y")
        if not source.exists():
            raise VosError(f"Video not found: {source}")
        frame0 = read_frame(source, 0)
        first_mask = make_label_map(frame0, prompt_objects, mask_weights, device)
        for warning in empty_objects(first_mask, prompt_objects):
            err_console.print(f"warning: {warning}")
    request = SegmentRequest(
        source=source,
        first_mask=first_mask,
        masks=[parse_mask_option(m) for m in (mask or [])],
        out_dir=out,
        overlay=overlay,
        weights=weights,
        device=device,
        precision=precision,
        size=size,
        force=force,
        compile=compile,
        flip=flip,
        cutout=cutout,
        matte=matte,
        objects=parse_objects_option(objects) if objects is not None else None,
        feather=feather,
        resume=resume,
    )
    columns = (
        TextColumn("[bold]segment"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("segment", total=None, rate="")
        import time

        start = time.perf_counter()

        def on_progress(done: int, total: int | None) -> None:
            elapsed = time.perf_counter() - start
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f} frames/s")

        summary = segment_video(
            request, notify=lambda m: err_console.print(f"note: {m}"), progress=on_progress
        )
    for warning in summary.warnings:
        err_console.print(f"warning: {warning}")
    where = ", ".join(str(p) for p in summary.outputs)
    ids = ",".join(str(i) for i in summary.objects)
    status = "interrupted after" if summary.interrupted else "segmented"
    network = f"{summary.network_size}p" if summary.network_size else "no frame"
    resumed = f" (resumed at frame {summary.resumed_at})" if summary.resumed_at else ""
    out_console.print(
        f"{status} {summary.frames} frames{resumed}, {len(summary.objects)} object(s) [{ids}], "
        f"network at {network}, {summary.fps:.1f} frames/s -> {where}"
    )
    if summary.interrupted:
        signum = summary.stop_signal or signal.SIGINT
        hint = "; --resume continues the run" if summary.out_dir is not None else ""
        err_console.print(f"stopped by {signal_name(signum)}: every output is valid{hint}")
        raise typer.Exit(interrupt_exit_code(signum))


@app.command()
@handles_errors
def train(
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Config file (.toml) or shipped name: smoke, lite0-cpu, paper-r101; "
            "maskmaker-lite0 trains the mask maker of vos mask / --box.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default runs/<name>).")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue a run: 'last' (the run folder's checkpoints/last.pt) or a checkpoint path.",
        ),
    ] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a config key: --set optim.lr=3e-4")
    ] = None,  # type: ignore[assignment]
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Draw loss and J&F curves of a log.jsonl to PNG.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Train A-GAME end to end (recurrent unrolling over snippets), or the mask maker."""
    if plot is not None:
        from vos_cli.train.plot import plot_log

        png = plot_log(plot)
        out_console.print(f"wrote {png}")
        return
    if config is None:
        raise VosError(
            "--config is required (a .toml file, or smoke / lite0-cpu / paper-r101 / "
            "maskmaker-lite0)"
        )
    from vos_cli.prompts.train import is_maskmaker_config
    from vos_cli.train.config import load_config_dict, load_stages

    if is_maskmaker_config(load_config_dict(config)):
        _train_maskmaker(config, out, resume, set_ or [], progress)
        return
    from vos_cli.train.loop import Trainer
    from vos_cli.train.stages import run_stages

    stages = load_stages(config, set_ or [])
    run_dir = out or Path("runs") / stages[0].config.name
    resume_path: Path | None = None
    if resume is not None:
        resume_path = (
            run_dir / "checkpoints" / "last.pt" if resume in ("", "last") else Path(resume)
        )
    elif len(stages) == 1 and (run_dir / "checkpoints" / "last.pt").exists():
        raise VosError(
            f"{run_dir} already holds a run; continue it with --resume last, or choose another --out"
        )

    def run(experiment, folder: Path, resume_from: Path | None):
        trainer = Trainer(
            experiment, folder, resume=resume_from, log=out_console.print, progress=progress
        )
        return trainer.run()

    result = run_stages(stages, run_dir, resume_path, run, log=out_console.print)
    if result is None:
        out_console.print(f"every stage had finished earlier -> {run_dir}")
        return
    best = "" if result.best_metric is None else f", best validation J&F {result.best_metric:.4f}"
    state = "interrupted (checkpoint saved)" if result.interrupted else "finished"
    out_console.print(
        f"training {state}: {result.steps} steps, {result.epochs} epochs{best} -> {run_dir}"
    )
    if result.interrupted:
        raise typer.Exit(interrupt_exit_code(getattr(result, "stop_signal", None) or signal.SIGINT))


def _train_maskmaker(
    config: str, out: Path | None, resume: str | None, overrides: list[str], progress: bool
) -> None:
    """``vos train`` with a mask-maker config (vos_cli/prompts/train.py)."""
    from vos_cli.prompts.train import MaskMakerTrainer, load_maskmaker_experiment

    experiment = load_maskmaker_experiment(config, overrides)
    run_dir = out or Path("runs") / experiment.name
    last = run_dir / "checkpoints" / "last.pt"
    resume_path = None
    if resume is not None:
        resume_path = last if resume in ("", "last") else Path(resume)
    elif last.exists():
        raise VosError(
            f"{run_dir} already holds a run; continue it with --resume last, or choose another --out"
        )
    trainer = MaskMakerTrainer(
        experiment, run_dir, resume=resume_path, log=out_console.print, progress=progress
    )
    result = trainer.run()
    best = "" if result.best is None else f", best validation score {result.best:.4f}"
    if result.interrupted:
        out_console.print(
            f"training interrupted (checkpoint saved): {result.steps} steps{best} -> {run_dir}; "
            "--resume last continues"
        )
        raise typer.Exit(interrupt_exit_code(result.stop_signal or signal.SIGINT))
    out_console.print(
        f"training finished: {result.steps} steps{best} -> {result.weights} (the mask maker)"
    )


@weights_app.command("info")
@handles_errors
def weights_info(path: Annotated[Path, typer.Argument(help="Weights file.")]) -> None:
    """Print what a weights file holds."""
    from vos_cli.model.weights_info import describe_weights

    for line in describe_weights(path):
        out_console.print(line)


@weights_app.command("convert")
@handles_errors
def weights_convert(
    source: Annotated[Path, typer.Argument(help="Authors' checkpoint or a vos file.")],
    target: Annotated[Path, typer.Argument(help="Output vos weights file.")],
    force: ForceOpt = False,
    half: Annotated[
        bool, typer.Option("--half", help="Store tensors as float16 (half the file size).")
    ] = False,
    inference_size: Annotated[
        int | None,
        typer.Option(
            "--inference-size", help="Record the default network short side (0 = native)."
        ),
    ] = None,
    small_object_size: Annotated[
        int | None,
        typer.Option(
            "--small-object-size",
            help="Record the short side for videos with an object under 12 stride-16 cells "
            "in the first mask (0 = no switch).",
        ),
    ] = None,
) -> None:
    """Convert a checkpoint (e.g. the authors' A-GAME release) into vos's own format."""
    from vos_cli.model.weights_info import convert_weights

    convert_weights(
        source,
        target,
        force=force,
        half=half,
        inference_size=inference_size,
        small_object_size=small_object_size,
    )
    out_console.print(f"wrote {target}")


@weights_app.command("average")
@handles_errors
def weights_average(
    sources: Annotated[
        list[Path], typer.Argument(help="Checkpoints of one run (vos weights or training).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output vos weights file.")],
    force: ForceOpt = False,
) -> None:
    """Average the weights of several checkpoints of one run (stochastic weight averaging)."""
    from vos_cli.model.weights_average import average_weights

    average_weights(sources, out, force=force)
    out_console.print(f"wrote {out} (the mean of {len(sources)} checkpoints)")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt as exc:  # outside a command (while parsing options)
        sys.exit(interrupt_exit_code(stop_signal(exc)))


if __name__ == "__main__":
    main()
