"""Eval of melody-fitting lyrics: constrained writer against the unconstrained model.

`python -m tools.lyrics.eval_lyrics [--model DIR] [--config K,STRESS,TEMP] [--json PATH]`

Protocol: the 40 fixed cases of `tools.lyrics.cases` (16 validation, 24 test). Without
`--config`, every setting of GRID (candidates K, stress weight, temperature) writes the
validation songs and the one with the best objective

    strong beats stressed (%) + 10 * mean log-probability per token

is chosen (the hard constraints hold by construction; the objective trades metre against
fluency). The chosen setting then writes the test songs once; the unconstrained baseline
writes the same songs at the same temperature. Seeds are the case indices. The table:
syllables exact, rhymes, strong beats stressed, distinct-2, copied 6-grams and seconds
per song (`tools.lyrics.metrics`), plus two test songs of each system in full.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import pathlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.inference.onnx_backend import OnnxRuntimeBackend
from services.generate.text.lyrics.domain import LyricsRequest, PlannedLine, plan
from services.generate.text.lyrics.prompt import lyrics_messages, prompt_text
from services.generate.text.lyrics.writer import LyricsWriter
from services.generate.text.model import TextModel
from tools.lyrics.baseline import write_unconstrained
from tools.lyrics.cases import Case, build_cases
from tools.lyrics.metrics import Tally, score_song

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "generate" / "smollm2-135m-instruct"


@dataclass(frozen=True)
class Config:
    """One setting of the constrained writer."""

    candidates: int
    stress_weight: float
    temperature: float

    def __str__(self) -> str:
        return (f"K={self.candidates} stress_weight={self.stress_weight:g} "
                f"temperature={self.temperature:g}")


GRID = (Config(4, 0.0, 0.8), Config(4, 1.0, 0.8), Config(4, 2.0, 0.8), Config(4, 1.0, 1.0),
        Config(8, 1.0, 0.8))


@dataclass
class Result:
    """A system's tally on a split, with its songs."""

    tally: Tally
    songs: list[list[str]]
    mean_logprob: float = float("nan")


def _request(case: Case, config: Config) -> LyricsRequest:
    return LyricsRequest(theme=case.theme, rhyme_scheme=case.scheme, melody_midi=case.midi,
                         seed=case.index, temperature=config.temperature,
                         candidates=config.candidates, stress_weight=config.stress_weight)


async def run_constrained(writer: LyricsWriter, cases: Sequence[Case],
                          config: Config) -> Result:
    """The constrained writer on each case."""
    total, songs, logprobs = Tally(), [], []
    for case in cases:
        request = _request(case, config)
        laid_out = plan(request)
        started = time.perf_counter()
        lyrics = await writer.write(request)
        seconds = time.perf_counter() - started
        lines = [line.text for line in lyrics.lines]
        total.add(score_song(lines, laid_out.lines, _prompt(case, laid_out.lines), seconds))
        songs.append([line.display for line in lyrics.lines])
        logprobs.append(lyrics.mean_logprob)
    return Result(total, songs, sum(logprobs) / len(logprobs))


async def run_unconstrained(model: TextModel, cases: Sequence[Case],
                            temperature: float) -> Result:
    """The free model on each case."""
    total, songs = Tally(), []
    for case in cases:
        laid_out = plan(_request(case, Config(1, 0.0, temperature)))
        mean = round(sum(p.syllables for p in laid_out.lines) / len(laid_out.lines))
        started = time.perf_counter()
        lines = await write_unconstrained(model, case.theme, case.scheme, len(laid_out.lines),
                                          mean, seed=case.index, temperature=temperature)
        seconds = time.perf_counter() - started
        total.add(score_song(lines, laid_out.lines, _prompt(case, laid_out.lines), seconds))
        songs.append(lines)
    return Result(total, songs)


def _prompt(case: Case, planned: Sequence[PlannedLine]) -> str:
    mean = round(sum(p.syllables for p in planned) / len(planned))
    return prompt_text(lyrics_messages(case.theme, len(planned), case.scheme, mean))


def objective(result: Result) -> float:
    """What the validation grid maximises."""
    return result.tally.row()["strong beats stressed %"] + 10.0 * result.mean_logprob


def _table(rows: dict[str, Result]) -> str:
    names = [*next(iter(rows.values())).tally.row(), "log-prob / token"]
    lines = ["| system | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for system, result in rows.items():
        figures = [*result.tally.row().values(), result.mean_logprob]
        lines.append(f"| {system} | " + " | ".join(
            "n/a" if math.isnan(v) else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
            for v in figures) + " |")
    return "\n".join(lines)


async def evaluate(model: TextModel, config: Config | None) -> dict[str, object]:
    """Validation grid (unless `config` is given), then the test split; prints tables."""
    cases = build_cases()
    validation = [c for c in cases if c.split == "validation"]
    test = [c for c in cases if c.split == "test"]
    writer = await LyricsWriter.create(model)
    report: dict[str, object] = {}
    if config is None:
        grid: dict[str, Result] = {}
        for candidate in GRID:
            started = time.perf_counter()
            grid[str(candidate)] = await run_constrained(writer, validation, candidate)
            print(f"validation {candidate}: objective {objective(grid[str(candidate)]):.2f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        best = max(GRID, key=lambda c: objective(grid[str(c)]))
        grid["unconstrained"] = await run_unconstrained(model, validation, best.temperature)
        print(f"\nValidation ({len(validation)} songs)\n{_table(grid)}\n\nchosen: {best}\n")
        report["validation"] = {k: {**v.tally.row(), "logprob": v.mean_logprob}
                                for k, v in grid.items()}
        config = best
    started = time.perf_counter()
    rows = {f"constrained ({config})": await run_constrained(writer, test, config)}
    constrained_s = time.perf_counter() - started
    rows["unconstrained"] = await run_unconstrained(model, test, config.temperature)
    print(f"Test ({len(test)} songs, run once)\n{_table(rows)}\n")
    print(f"test split, constrained: {constrained_s:.0f} s in all")
    for system, result in rows.items():
        for case, song in list(zip(test, result.songs, strict=True))[:2]:
            print(f"\n[{system}] case {case.index} ({case.source}, {case.scheme}, "
                  f"{case.theme!r})\n" + "\n".join(song))
    report["test"] = {k: {**v.tally.row(), "logprob": v.mean_logprob} for k, v in rows.items()}
    report["chosen"] = str(config)
    return report


async def _main(args: argparse.Namespace) -> dict[str, object]:
    spec = ModelSpec.load(pathlib.Path(args.model))
    backend = OnnxRuntimeBackend([], args.threads)
    await backend.load(spec)
    model = TextModel(spec, DecodeBatcher(backend, spec))
    config = None
    if args.config:
        k, stress, temperature = args.config.split(",")
        config = Config(int(k), float(stress), float(temperature))
    try:
        report = await evaluate(model, config)
    finally:
        await model.batcher.close()
        await backend.close()
    return report


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--config", help="K,STRESS,TEMP: skip the validation grid")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    report = asyncio.run(_main(args))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
