"""Command-line options that several commands share, declared once as typed aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core

DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16 | fp16")]
WeightsOpt = Annotated[
    Path | None,
    typer.Option("--weights", help="Weights file (default: the model shipped with vos)."),
]
SizeOpt = Annotated[
    int | None,
    typer.Option(
        "--size",
        help="Short side the network runs at, for every video (default: the model's own; the "
        "shipped model runs at 240, or 360 when the first mask has an object under 3% of the "
        "frame; 0 = the video's resolution). Masks are always written at the video's size.",
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
FlipOpt = Annotated[
    bool,
    typer.Option(
        "--flip",
        help="Also track the mirrored video and average the two (slightly better masks, "
        "about half the speed).",
    ),
]
AggregateSingleOpt = Annotated[
    bool | None,
    typer.Option(
        "--aggregate-single/--no-aggregate-single",
        help="Pass a lone object through the multi-object aggregation before it is fed back "
        "and written, as the authors do (default: on for davis17 and ytvos, off for davis16; "
        "see vos_cli/bench/protocol.py).",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the backbone: ~30 s once, then faster with one object."
    ),
]


class KeepsArgsCommand(typer.core.TyperCommand):
    """A command that keeps its raw arguments in ``ctx.meta["vos_raw_args"]``: click parses each
    repeated option into a list of its own, and the order of --box and --point across them
    matters (see vos_cli.prompts.types.ordered_prompt_options)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta["vos_raw_args"] = list(args)
        return super().parse_args(ctx, args)
