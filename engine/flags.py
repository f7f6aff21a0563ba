"""Range checks of numeric flags, at parse time: every float flag finite, and each flag's own range, with one
line per bad flag naming it (`train.py: error: --learning_rate must be > 0, got nan`), all of them at once.

    args = parser.parse_args(argv)
    check_flags(parser, args, {**RUN_RULES, **OPTIMIZER_RULES, "dice_weight": at_least(0)})

A rule is a function of the value that returns what is wrong ("must be > 0") or None; None values (a flag not
given, whose default is None) are not checked.
"""
import argparse
import math
import sys

from engine.device import choose_device


def above(lo):
    return lambda v: None if v > lo else f"must be > {lo}"


def at_least(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}"


def between(lo, hi, lo_open: bool = False):
    """lo <= v <= hi (lo < v <= hi with lo_open)."""
    def rule(v):
        ok = (lo < v if lo_open else lo <= v) and v <= hi
        return None if ok else f"must be in {'(' if lo_open else '['}{lo}, {hi}]"
    return rule


def device(v):
    """A device that exists here: cpu, cuda, cuda:N with N below the GPU count (choose_device's checks)."""
    try:
        choose_device(v)
    except ValueError as e:
        return str(e)  # "--device cpu:7: ...", the flag named
    return None


# The rules of the flags engine/run.py: add_run_args and engine/loop.py: add_optimizer_args declare.
RUN_RULES = {"seed": at_least(0), "num_workers": at_least(0), "val_every": at_least(1), "device": device}
OPTIMIZER_RULES = {"epochs": at_least(1), "batch_size": at_least(1), "learning_rate": above(0),
                   "weight_decay": at_least(0), "grad_clip": at_least(0)}


class _OldSpelling(argparse.Action):
    """A flag's old spelling: stores into the new flag's dest and says once, on stderr, what it is now called."""

    def __init__(self, option_strings, dest, new: str = None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} is now {self.new}; the old spelling will be dropped",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_old_spellings(parser: argparse.ArgumentParser, renamed: dict) -> None:
    """Accept each {old: new} flag spelling for one release, hidden from --help; the new flag must exist already
    (its dest, type and nargs are the old one's)."""
    for old, new in renamed.items():
        action = parser._option_string_actions[new]
        parser.add_argument(old, dest=action.dest, type=action.type, nargs=action.nargs, choices=action.choices,
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS, action=_OldSpelling, new=new)


def flag_problems(parser: argparse.ArgumentParser, args, rules: dict) -> list:
    """["--flag must be ..., got V"] of every float flag that is not finite and every flag that breaks its rule."""
    problems = []
    for action in parser._actions:
        dest = action.dest
        if dest not in vars(args) or not action.option_strings or isinstance(action, _OldSpelling):
            continue
        value = getattr(args, dest)
        flag = max(action.option_strings, key=len)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is None:
                continue
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"{flag} must be a finite number, got {v}")
                break
            wrong = rules[dest](v) if dest in rules else None
            if wrong:
                problems.append(f"{flag} {wrong}, got {v}" if not wrong.startswith(flag) else wrong)
                break
    return problems


def check_flags(parser: argparse.ArgumentParser, args, rules: dict = None, more=()) -> None:
    """Exit with status 2 (as argparse does) when any flag is out of range: the usage, then one
    `prog: error: --flag ...` line per bad flag (flag_problems, then the cross-flag messages in `more`)."""
    problems = flag_problems(parser, args, rules or {}) + [m for m in more if m]
    if problems:
        parser.print_usage(sys.stderr)
        for line in problems:
            print(f"{parser.prog}: error: {line}", file=sys.stderr)
        parser.exit(2)
