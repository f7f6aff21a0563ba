"""The whole pipeline, end to end, on a small synthetic dataset: the README's main-job command.

    python scripts/quickstart.py [--out quickstart] [--device cpu]

The stages are the recipe pipeline/recipes.py: QUICKSTART, run by pipeline/stages.py. Each stage is a command
of the repository, printed before it runs, so you can copy any of them. Everything lands in --out: the
dataset, checkpoints, PNG grids (--out/grids_*), submissions (--out/submission_*.pt), the scores as JSON
(--out/scores/) and the comparison table (--out/results.md). A stage whose outputs are already there is
skipped, so re-running after a crash or Ctrl-C continues where it stopped; --fresh starts over;
--dry_run prints the commands only.
"""
import argparse
import sys

from engine import run_cli
from pipeline.recipes import QUICKSTART
from pipeline.stages import StageFailed, run_recipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="quickstart", help="folder for everything the run writes (default: quickstart)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... passed to every stage (default: each stage "
                        "takes CUDA if present, else CPU)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first and run every stage again")
    parser.add_argument("--dry_run", action="store_true", help="print every stage's command, run nothing")
    args = parser.parse_args(argv)
    try:
        run_recipe(QUICKSTART, args.out, args.device, args.fresh, dry_run=args.dry_run)
    except StageFailed as e:
        sys.exit(f"\n{e}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
