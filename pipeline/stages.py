"""The one stage runner: a recipe (pipeline/recipes.py, plain data) is a list of stages, each a command of the
repository; the runner runs them in order, skips the finished ones, and builds the results table from the
scores the stages wrote as JSON (--scores_json), never from their printed output.

A stage (a dict):
    name         shown, and the name of its log (OUT/logs/NAME.log, whose presence marks the stage done)
    cmd          the command: a list of strings with {out} {data} {py} placeholders; "{device}" as an item
                 stands for "--device DEV" when the run has one, nothing otherwise
    done_when    optional: a path (placeholders too) whose existence, with the log, marks the stage done
    resume       optional: a checkpoint folder; a training stage cut short there is continued with --resume
    scores       optional: a JSON path the stage writes (its --scores_json); the table reads it
A table row (a dict): {"label", "scores": JSON path, "key": the figure in it, "optional": absent is no row,
"why": one line saying what the row is, written beside it in OUT/results.md}.
A recipe may also hold "names" (extra placeholders, e.g. "data" for a dataset given by the user) and "env"
(environment variables of every stage, e.g. {"OMP_NUM_THREADS": "1"}).
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engine import OutputPathError, RunLock, atomic_write, choose_device, make_folder

REPO = Path(__file__).resolve().parents[1]


class StageFailed(RuntimeError):
    """A stage's command exited with an error (its output, streamed above, says why)."""


def expand(value, names: dict, device: str = None) -> list:
    """A command item (or a path) with its placeholders filled: a list of strings ("{device}" may give two)."""
    if value == "{device}":
        return ["--device", device] if device else []
    text = str(value)
    for name, filled in names.items():  # only the known placeholders: a command may hold other braces
        text = text.replace("{" + name + "}", str(filled))
    return [text]


def started(checkpoint_dir: Path) -> bool:
    """A training stage cut short left last.pt or best.pt behind: continue it exactly rather than start over."""
    return any((checkpoint_dir / n).exists() for n in ("last.pt", "best.pt"))


def recipe_names(recipe: dict, out: Path) -> dict:
    """The placeholders of a recipe's commands, filled for the run folder `out`."""
    names = {"out": out, "data": out / "data", "py": sys.executable, **recipe.get("names", {})}
    return {k: str(v).replace("{out}", str(out)) for k, v in names.items()}


def stage_command(stage: dict, names: dict, device: str = None) -> list:
    """A stage's command line as it runs (without the --resume a cut training gets)."""
    cmd = [item for value in stage["cmd"] for item in expand(value, names, device)]
    if stage.get("scores"):
        cmd += ["--scores_json", expand(stage["scores"], names)[0]]
    return cmd


def run_stage(stage: dict, names: dict, out: Path, device: str = None, env: dict = None) -> float:
    """Run one stage (streaming its output) unless it is done; returns its seconds (0 when skipped)."""
    log = out / "logs" / f"{stage['name']}.log"
    done_when = Path(expand(stage["done_when"], names)[0]) if stage.get("done_when") else None
    scores = Path(expand(stage["scores"], names)[0]) if stage.get("scores") else None
    marker = done_when or scores
    if log.exists() and (marker is None or marker.exists()):
        print(f"\n== {stage['name']}: done already ({log.relative_to(out)}), skipped")
        return 0.0
    cmd = stage_command(stage, names, device)
    if scores is not None:
        scores.parent.mkdir(parents=True, exist_ok=True)
    if stage.get("resume") and started(Path(expand(stage["resume"], names)[0])):
        cmd.append("--resume")
    print(f"\n== {stage['name']}\n$ {printable(cmd)}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start, lines = time.time(), []
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:  # tqdm writes \r-updates: pass them through as they come
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    if proc.wait() != 0:
        raise StageFailed(f"stage {stage['name']!r} failed (exit {proc.returncode}); fix the error above and re-run "
                          f"the same command: finished stages are kept and skipped")
    text = "".join(lines)
    atomic_write(log, lambda f: f.write(text.encode()))  # the log's presence marks the stage done
    return time.time() - start


def table_rows(recipe: dict, names: dict) -> list:
    """[(label, value, why)] of the recipe's table, read from the stages' score files."""
    rows, cache = [], {}
    for row in recipe["table"]["rows"]:
        path = Path(expand(row["scores"], names)[0])
        if path not in cache:
            cache[path] = json.loads(path.read_text())
        if row["key"] not in cache[path]:
            if row.get("optional"):
                continue
            raise ValueError(f"{path} holds no {row['key']!r}: the stage that writes it did not finish")
        rows.append((row["label"], float(cache[path][row["key"]]), row.get("why", "")))
    return rows


# Written into every folder the runner makes (or finds empty): --fresh deletes only a folder that holds it.
MARKER = ".made_by_stage_runner"


def claim_folder(out: Path, fresh: bool) -> None:
    """Make `out` the runner's work folder, or refuse: never the checkout, a parent of it or of the current
    folder. A folder the runner makes (or finds empty) gets MARKER; --fresh deletes only a folder holding it
    (or a run of an earlier version: nothing but logs/ of stage logs and what the stages wrote), never one
    that held other files first."""
    here = {REPO.resolve(), Path.cwd().resolve()}
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} is a file, not a folder: give a folder path")
    if any(out == p or out in p.parents for p in here):
        raise OutputPathError(f"--out {out} is the checkout, the current folder or a folder above them: "
                              f"give a folder of its own (e.g. --out quickstart)")
    ours = not out.is_dir() or (out / MARKER).is_file() or not any(out.iterdir())
    if fresh and out.is_dir():
        if not ours:
            raise OutputPathError(f"--fresh: {out} was not made by the stage runner (it holds no {MARKER}), so it "
                                  f"is not deleted; choose another --out, or delete it yourself")
        shutil.rmtree(out)
    make_folder(out, "--out")
    if ours:
        (out / MARKER).write_text("made by pipeline/stages.py: run_recipe; --fresh may delete this folder\n")


def printable(cmd: list) -> str:
    return " ".join(c if " " not in c else repr(c) for c in cmd)


def run_recipe(recipe: dict, out, device: str = None, fresh: bool = False, dry_run: bool = False) -> list:
    """Run every stage of `recipe` into folder `out` (skipping finished ones), write OUT/results.md, print the
    table and the stage times; returns the table's rows. --fresh (fresh=True) deletes only a folder this
    runner made (claim_folder). dry_run: print each stage's command and touch nothing."""
    out = Path(out).resolve()
    if dry_run:
        names = recipe_names(recipe, out)
        for stage in recipe["stages"]:
            print(f"== {stage['name']}\n$ {printable(stage_command(stage, names, device))}")
        return []
    if device:
        choose_device(device)  # a device this machine lacks is refused before the first stage, not at the U-Net's
    if fresh:  # refused while another runner uses the folder, before anything is deleted
        RunLock(out, "--out", path=out.parent / f".{out.name}.lock").acquire()
    claim_folder(out, fresh)
    RunLock(out, "--out").acquire()  # a second runner on this folder is refused; released at exit
    names = recipe_names(recipe, out)
    env = {**os.environ, **{k: expand(v, names)[0] for k, v in recipe.get("env", {}).items()}}
    t0, timings = time.time(), []
    for stage in recipe["stages"]:
        seconds = run_stage(stage, names, out, device, env)
        if seconds:
            timings.append((stage["name"], seconds))
    rows = table_rows(recipe, names)
    head = recipe["table"]["header"]
    table = f"| {head[0]} | {head[1]} |\n|---|---|\n" + "".join(f"| {n} | {v:.4f} |\n" for n, v, _ in rows)
    explained = (f"| {head[0]} | {head[1]} | what it is |\n|---|---|---|\n"
                 + "".join(f"| {n} | {v:.4f} | {why} |\n" for n, v, why in rows))
    notes = expand(recipe.get("notes", ""), names)[0]
    atomic_write(out / "results.md", lambda f: f.write(
        (f"# Results on {names['data']} ({recipe['table']['title']})\n\n{explained}\n{notes}").encode()))
    print(f"\n== results on {names['data']} ({recipe['table']['title']}, {len(rows)} rows)\n{table}")
    print("stage times: " + ", ".join(f"{n} {s:.0f}s" for n, s in timings))
    print(f"total {time.time() - t0:.0f}s. {expand(recipe.get('outputs', ''), names)[0]}table: {out}/results.md; "
          f"logs: {out}/logs/")
    return rows
