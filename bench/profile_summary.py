"""Where the time goes: a py-spy ``--format raw`` profile summed by function.

    python -m bench.profile_summary bench/results/profiles/batch-api-x2-1.txt [--top 30]

Each line of a raw profile is a stack (frames separated by ``;``, outermost first) and its
sample count. ``self`` counts the samples in which a function is the innermost frame (the time
spent in its own code), ``total`` those in which it is anywhere on the stack (once per stack).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# py-spy writes a frame as "function (path/to/module.py:line)"; the line is left out here so
# that a function is one entry however many lines were sampled.
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^():]*)(?::\d+)?\)$")


# Frames every stack passes through on its way to the work: they say nothing about it.
_PLUMBING = ("(asyncio/", "(threading.py", "(<frozen runpy>", "(contextlib.py", "(_decorator.py")


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["path"]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return samples, own, total


def render(path: Path, top: int = 25) -> str:
    samples, own, total = summarise(path)
    if not samples:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {samples} samples"]
    lines.append("  self%  function")
    for name, count in own.most_common(top):
        lines.append(f"  {100 * count / samples:5.1f}  {name}")
    lines.append("  total%  function (leaving out the frames that nearly every sample passes")
    lines.append("          through, and the event loop's own)")
    widest = max(total.values())
    shown = [
        (name, count)
        for name, count in total.most_common()
        if count < 0.9 * widest and not any(part in name for part in _PLUMBING)
    ]
    for name, count in shown[:top]:
        lines.append(f"  {100 * count / samples:6.1f}  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        print(render(path, args.top))
        print()


if __name__ == "__main__":
    main()
