"""Camera decode: our path against each QR library alone, on generated 1280x720 frames.

Not a standalone benchmark (``bench/ecode.py`` calls :func:`run` and prints it), but
runnable on its own: ``python -m bench._camera_decode [--images N] [--seed S]``.

Every decoder gets the same grayscale frames (the BGR->gray conversion is shared, done
once, and not timed); decoders are timed interleaved, frame by frame, so load from other
processes on the machine falls on all of them alike. A frame counts as a success when
the decoder returns the exact payload encoded in it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from typing import Any

from sscard_hardware_sim.qr_images import frames

from sscard_terminal.drivers.camera import decode_gray, single_library_decoders, to_gray

OURS = "sscard cascade"


def run(images: int = 200, seed: int = 7) -> dict[str, Any]:
    """Per-decoder ms/frame and success rate, ours included, and how ours compares."""
    decoders = dict(single_library_decoders())
    decoders[OURS] = decode_gray
    corpus = [(to_gray(f.image), f.text, f.distortion) for f in frames(images, seed=seed)]
    for decode in decoders.values():
        decode(corpus[0][0])  # warm-up: library initialisation is not per-frame cost
    seconds: dict[str, float] = defaultdict(float)
    successes: dict[str, int] = defaultdict(int)
    per_distortion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    names = list(decoders)
    missed_by_ours_only = 0  # frames some single library read and our path did not
    for index, (gray, text, distortion) in enumerate(corpus):
        rotation = index % len(names)
        decoded_by: set[str] = set()
        for name in names[rotation:] + names[:rotation]:
            began = time.perf_counter()
            found = decoders[name](gray)
            seconds[name] += time.perf_counter() - began
            if text.encode() in found:
                successes[name] += 1
                decoded_by.add(name)
                per_distortion[name][distortion] += 1
        if decoded_by and OURS not in decoded_by:
            missed_by_ours_only += 1
    results = {
        name: {
            "ms_per_frame": 1000.0 * seconds[name] / len(corpus),
            "success_rate": successes[name] / len(corpus),
            "decoded": successes[name],
            "by_distortion": dict(per_distortion[name]),
        }
        for name in names
    }
    singles = {n: r for n, r in results.items() if n != OURS}
    fastest = min(singles, key=lambda n: singles[n]["ms_per_frame"])
    best = max(singles, key=lambda n: (singles[n]["decoded"], -singles[n]["ms_per_frame"]))
    ours = results[OURS]
    return {
        "images": len(corpus),
        "seed": seed,
        "per_distortion_total": _count(c[2] for c in corpus),
        "decoders": results,
        "ours": OURS,
        "fastest_single": fastest,
        "most_successful_single": best,
        # > 1.0: our path is faster than the fastest single library.
        "speed_ratio": singles[fastest]["ms_per_frame"] / ours["ms_per_frame"],
        "no_slower": ours["ms_per_frame"] <= singles[fastest]["ms_per_frame"],
        "succeeds_at_least_as_often": ours["decoded"] >= singles[best]["decoded"],
        "missed_by_ours_but_read_by_a_single_library": missed_by_ours_only,
    }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return dict(counts)


def format_report(result: dict[str, Any]) -> list[str]:
    """The figures as printable lines (what bench/ecode.py prints)."""
    lines = [f"camera decode: {result['images']} frames 1280x720, seed {result['seed']}"]
    for name, r in sorted(result["decoders"].items(), key=lambda kv: kv[1]["ms_per_frame"]):
        lines.append(
            f"  {name:28s} {r['ms_per_frame']:7.2f} ms/frame  "
            f"{r['decoded']:4d}/{result['images']} ({100 * r['success_rate']:.1f} %)"
        )
    totals = result["per_distortion_total"]
    frames_per = ", ".join(f"{d} {n}" for d, n in totals.items())
    lines.append(f"  decoded per distortion (frames: {frames_per}):")
    for name, r in sorted(result["decoders"].items(), key=lambda kv: kv[1]["ms_per_frame"]):
        by = r["by_distortion"]
        lines.append(f"    {name:26s} " + " ".join(f"{d}={by.get(d, 0)}" for d in totals))
    lines.append(
        f"  ours vs fastest single ({result['fastest_single']}): speed ratio "
        f"{result['speed_ratio']:.2f}, no slower: {result['no_slower']}; "
        f"succeeds at least as often as {result['most_successful_single']}: "
        f"{result['succeeds_at_least_as_often']}; frames only a single library read: "
        f"{result['missed_by_ours_but_read_by_a_single_library']}"
    )
    return lines


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench._camera_decode")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = run(images=args.images, seed=args.seed)
    for line in format_report(result):
        print(line)
    ratio: float = result["speed_ratio"]
    return ratio


if __name__ == "__main__":
    print(f"ratio={main(sys.argv[1:]):.4f}")
