"""Throughput and memory of `projector replay` on the real large logs and a 1,000,000-event log.

For each log (ai-desk's large fixture, a log of --events events that bench/make_log.py
builds from it once and caches in /tmp, and todomvc's large fixture with its bulk
"clear completed" events) this runs, in --runs rounds that each measure every log (a
slow spell of the shared machine then falls on every log of a round), a floor and a
replay back to back:

* the replay: projector.replay.replay() with its defaults (every event validated,
  upcast, applied, checkpointed; a writer process on a second core) into a fresh
  target, in a subprocess; its peak RSS is its own VmHWM plus its writer process's
  (all the processes of a replay together);
* the floor: read every eventlog row, json.loads its args, one INSERT OR REPLACE per
  event into one table keyed by (seqNumGlobal, seqNumClient) holding argsJson, 10,000
  events per transaction, no validation; also in a subprocess.

It reports medians (events/s, wall time, peak RSS), the ratio to the floor as issue 15
states its targets (same-run ratios, medians of rounds: each round's floor time over its
replay time, then their median; the ratio of the medians is kept beside it), whether the 1M
time per event is within 15% of large's (the median over rounds of each round's
growth: its 1M replay against the mean of large's replay before it and one more replay
of large right after it, as a run of a few seconds follows the machine's drift), whether
peak RSS stays <= 150 MB and within 10% between the two logs, the wall time of
`projector --help`, and a phase profile of one more replay of each log
(read, digest, parse, validate, prefetch, handlers, write, commit, wait: see
projector/profile.py). The tables go to stdout and everything to bench/results.json.

Usage: python bench/bench.py --large ../shared/livestore/fixtures/large/ai-desk
       [--todomvc ../shared/livestore/apps/todomvc/fixtures/large/todomvc] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

#: The replay/floor ratio this round of speed work aims at (issue 15), and the one after.
RATIO_TARGET = 0.5
RATIO_STRETCH = 0.7
LINEAR_TOLERANCE = 0.15
RSS_LIMIT_MB = 150.0
RSS_FLAT_TOLERANCE = 0.10
HELP_TARGET_S = 0.3
FLOOR_BATCH = 10_000


# ---------------------------------------------------------------- children (one measurement each)


def _child_replay(source: Path, target: Path, profile: bool = False) -> dict[str, Any]:
    from events import _native
    from projector.log import configure
    from projector.profile import Phases
    from projector.replay import ReplayOptions, replay

    configure("human", "quiet")
    phases = Phases() if profile else None
    started = time.perf_counter()
    result = replay(source, target, ReplayOptions(phases=phases))
    seconds = time.perf_counter() - started
    data: dict[str, Any] = {
        "seconds": seconds,
        "read": result.read,
        "applied": result.applied,
        "parked": result.parked_total,
        "state": result.state,
        "writerVmHwmMB": result.writer_peak_mb,
        "build": _native.state(),
    }
    if phases is not None:
        data["phases"] = {k: round(v, 3) for k, v in phases.seconds.items()}
    return data


def _child_profile(source: Path, target: Path) -> dict[str, Any]:
    return _child_replay(source, target, profile=True)


def _child_floor(source: Path, target: Path) -> dict[str, Any]:
    from make_log import eventlog_path

    from events.sources import connect_readonly

    eventlog = eventlog_path(source)
    started = time.perf_counter()
    src = connect_readonly(eventlog)
    dst = sqlite3.connect(str(target), isolation_level=None)
    dst.execute(
        "CREATE TABLE events (seqNumGlobal INTEGER NOT NULL, seqNumClient INTEGER NOT NULL, "
        "argsJson TEXT NOT NULL, PRIMARY KEY (seqNumGlobal, seqNumClient))"
    )
    insert = "INSERT OR REPLACE INTO events (seqNumGlobal, seqNumClient, argsJson) VALUES (?, ?, ?)"
    cursor = src.execute(
        "SELECT seqNumGlobal, seqNumClient, argsJson FROM eventlog "
        "ORDER BY seqNumGlobal, seqNumClient"
    )
    count = 0
    while rows := cursor.fetchmany(FLOOR_BATCH):
        dst.execute("BEGIN")
        for g, c, args_json in rows:
            json.loads(args_json)
            dst.execute(insert, (g, c, args_json))
        dst.execute("COMMIT")
        count += len(rows)
    dst.close()
    src.close()
    return {"seconds": time.perf_counter() - started, "read": count}


CHILDREN = {"replay": _child_replay, "floor": _child_floor, "profile": _child_profile}


def _vm_hwm_mb() -> float | None:
    """This process's peak resident set size (Linux VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _remove_db(path: Path) -> None:
    from projector.backup import remove_database
    from projector.lock import lock_path

    remove_database(path)
    lock_path(path).unlink(missing_ok=True)


def run_child(mode: str, source: Path, target: Path) -> dict[str, Any]:
    """One measurement in a fresh interpreter; adds its wall time and peak RSS (wait4)."""
    _remove_db(target)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(source), str(target)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{mode} of {source} failed:\n{err.read().decode(errors='replace')}")
        out.seek(0)
        data: dict[str, Any] = json.loads(out.read())
    data["processSeconds"] = wall
    # wait4's ru_maxrss also counts what the process held before exec (this fat parent's
    # pages, shared at fork), so the child's own VmHWM is the figure; both are kept. A
    # replay's writer process adds its own VmHWM: the figure is all processes together.
    data["ruMaxRssMB"] = usage.ru_maxrss / 1024  # Linux reports KiB
    data["mainRssMB"] = data.pop("vmHwmMB", None) or data["ruMaxRssMB"]
    data["maxRssMB"] = data["mainRssMB"] + (data.get("writerVmHwmMB") or 0.0)
    data["loadavg"] = os.getloadavg()[0]
    return data


# ---------------------------------------------------------------- measurements


def _median(values: list[float]) -> float:
    return statistics.median(values)


def measure_once(label: str, source: Path, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One floor and one replay of SOURCE, back to back (so both see the same machine)."""
    floor_target = work / f"{label}-floor.db"
    floor = run_child("floor", source, floor_target)
    _remove_db(floor_target)
    replay = run_child("replay", source, work / f"{label}-replay.db")
    return floor, replay


def summarize(
    label: str,
    source: Path,
    events: int,
    floors: list[dict[str, Any]],
    replays: list[dict[str, Any]],
    work: Path,
    keep: bool,
) -> dict[str, Any]:
    """Medians of a log's runs; the last replay's target is digested (then removed)."""
    target = work / f"{label}-replay.db"
    bad = [r for r in replays if r["read"] != events or r["parked"] or r["state"] != "complete"]
    if bad:
        raise SystemExit(f"{label}: a replay did not apply every event: {bad[0]}")
    from projector.digest import digest

    overall = digest(target)["overall"]
    if not keep:
        _remove_db(target)
    replay_s = _median([r["seconds"] for r in replays])
    floor_s = _median([f["seconds"] for f in floors])
    # Each round's own ratio (its floor and replay ran back to back); their median is the
    # figure checked, where the ratio of the medians can pair one round's fast floor with
    # another's slow replay on a drifting machine.
    round_ratios = [f["seconds"] / r["seconds"] for f, r in zip(floors, replays, strict=True)]
    return {
        "source": _shown(source),
        "events": events,
        "replay": {
            "runs": [_rounded(r) for r in replays],
            "medianSeconds": round(replay_s, 3),
            "eventsPerSecond": round(events / replay_s),
            "peakRssMB": round(max(r["maxRssMB"] for r in replays), 1),
            "medianPeakRssMB": round(_median([r["maxRssMB"] for r in replays]), 1),
            "peakMainRssMB": round(max(r["mainRssMB"] for r in replays), 1),
            "peakWriterRssMB": round(max(r.get("writerVmHwmMB") or 0.0 for r in replays), 1),
        },
        "floor": {
            "runs": [_rounded(f) for f in floors],
            "medianSeconds": round(floor_s, 3),
            "eventsPerSecond": round(events / floor_s),
        },
        "ratioToFloor": round(_median(round_ratios), 3),
        "roundRatios": [round(r, 3) for r in round_ratios],
        "ratioOfMedians": round(floor_s / replay_s, 3),
        "digest": overall,
    }


def _shown(path: Path) -> str:
    """PATH relative to the repository when it is beside it (results.json is committed)."""
    relative = os.path.relpath(path, ROOT)
    return relative if not relative.startswith("../..") else str(path)


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}


def measure_help(runs: int) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "projector"
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "projector", "--help"]
    times = []
    for _ in range(max(runs, 5)):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return {
        "command": "projector --help" if exe.exists() else "python -m projector --help",
        "runs": [round(t, 3) for t in times],
        "medianSeconds": round(_median(times), 3),
        "targetSeconds": HELP_TARGET_S,
        "ok": _median(times) < HELP_TARGET_S,
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memoryGB": mem_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def checks(
    large: dict[str, Any], big: dict[str, Any] | None, after: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The targets of issue 15 checked on the summaries: large's ratio to the floor and,
    with the BIG log, its ratio, the growth of time per event from large to big (each
    round's big replay against the mean of large's replays before and AFTER it: a single
    run of large, a few seconds, follows the machine's drift far more than a run of the
    big log), and peak RSS."""
    result: dict[str, Any] = {
        "ratioTarget": RATIO_TARGET,
        "largeRatioOk": large["ratioToFloor"] >= RATIO_TARGET,
        "ratioStretch": RATIO_STRETCH,
        "largeRatioStretchOk": large["ratioToFloor"] >= RATIO_STRETCH,
    }
    if big is None:
        return result
    scale = large["events"] / big["events"]
    # Per round (large, big, large again: back to back), the growth of time per event;
    # the median of those is the figure checked. The ratio of the medians is kept too.
    before = [a["seconds"] for a in large["replay"]["runs"]]
    again = [a["seconds"] for a in after] if after else before
    paired = [
        b["seconds"] / ((a1 + a2) / 2) * scale
        for a1, a2, b in zip(before, again, big["replay"]["runs"], strict=True)
    ]
    growth = _median(paired)
    of_medians = big["replay"]["medianSeconds"] / large["replay"]["medianSeconds"] * scale
    rss_large = large["replay"]["peakRssMB"]
    rss_big = big["replay"]["peakRssMB"]
    rss_change = (rss_big - rss_large) / rss_large
    result.update(
        {
            "bigRatioOk": big["ratioToFloor"] >= RATIO_TARGET,
            "linear": {
                "perEventTimeRatio": round(growth, 3),
                "perRound": [round(g, 3) for g in paired],
                "largeAfterSeconds": [round(a, 3) for a in again],
                "ofMedians": round(of_medians, 3),
                "tolerance": LINEAR_TOLERANCE,
                "ok": abs(growth - 1) <= LINEAR_TOLERANCE,
            },
            "rss": {
                "largeMB": rss_large,
                "bigMB": rss_big,
                "limitMB": RSS_LIMIT_MB,
                "underLimit": max(rss_large, rss_big) <= RSS_LIMIT_MB,
                "change": round(rss_change, 3),
                "tolerance": RSS_FLAT_TOLERANCE,
                "flat": abs(rss_change) <= RSS_FLAT_TOLERANCE,
            },
        }
    )
    return result


def measure_profiles(
    logs_to_run: list[tuple[str, Path, int]], work: Path
) -> dict[str, dict[str, Any]]:
    """One more replay of each log with its phases timed (not part of the medians)."""
    profiles = {}
    for label, source, _ in logs_to_run:
        target = work / f"{label}-profile.db"
        data = run_child("profile", source, target)
        _remove_db(target)
        seconds = data["phases"]
        total = sum(seconds.values()) or 1.0
        profiles[label] = {
            "seconds": round(data["seconds"], 3),
            "phases": seconds,
            "shares": {k: round(v / total, 3) for k, v in seconds.items()},
            "outsideLoopSeconds": round(data["seconds"] - total, 3),
        }
    return profiles


def print_profiles(profiles: dict[str, dict[str, Any]]) -> None:
    if not profiles:
        return
    phases = list(next(iter(profiles.values()))["phases"])
    print(f"{'phase %':<8} " + " ".join(f"{p:>8}" for p in phases) + f" {'setup s':>8}")
    for label, data in profiles.items():
        shares = " ".join(f"{100 * data['shares'][p]:>8.1f}" for p in phases)
        print(f"{label:<8} {shares} {data['outsideLoopSeconds']:>8.2f}")


def print_table(logs: dict[str, dict[str, Any]], help_info: dict[str, Any]) -> None:
    header = (
        f"{'log':<8} {'events':>10} {'replay s':>9} {'events/s':>9} {'floor s':>8} "
        f"{'floor ev/s':>10} {'ratio':>6} {'peak RSS MB':>11} {'(main + writer)':>16}"
    )
    print(header)
    print("-" * len(header))
    for label, data in logs.items():
        rep, flo = data["replay"], data["floor"]
        print(
            f"{label:<8} {data['events']:>10,} {rep['medianSeconds']:>9.2f} "
            f"{rep['eventsPerSecond']:>9,} {flo['medianSeconds']:>8.2f} "
            f"{flo['eventsPerSecond']:>10,} {data['ratioToFloor']:>6.2f} {rep['peakRssMB']:>11.1f} "
            f"{rep['peakMainRssMB']:>8.1f} + {rep['peakWriterRssMB']:>5.1f}"
        )
    print(f"projector --help: {help_info['medianSeconds']:.3f} s (median)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=Path, help="the large fixture's store directory")
    parser.add_argument(
        "--todomvc",
        type=Path,
        help="todomvc's large store directory (default: beside --large in ../shared, if there)",
    )
    parser.add_argument("--runs", type=int, default=3, help="measurements per log (median)")
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the big log")
    parser.add_argument("--skip-big", action="store_true", help="no 1,000,000-event log")
    parser.add_argument("--no-profile", action="store_true", help="no phase profile")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "projector-bench"
    )
    parser.add_argument("--keep", action="store_true", help="keep the replayed targets")
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "SOURCE", "TARGET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.child:
        mode, source, target = args.child
        data = CHILDREN[mode](Path(source), Path(target))
        data["vmHwmMB"] = _vm_hwm_mb()
        print(json.dumps(data))
        return 0
    if args.large is None:
        parser.error("--large is required")

    from make_log import EVENTLOG_NAME, cache_path

    from projector.replay import DEFAULT_BATCH
    from projector.target import CACHE_KIB

    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_start = os.getloadavg()
    large = args.large.resolve()
    large_events = _count(large)
    print(f"large: {large} ({large_events:,} events)", flush=True)
    logs_to_run = [("large", large, large_events)]
    big_label = f"{args.events // 1_000_000}M" if args.events % 1_000_000 == 0 else str(args.events)
    build: dict[str, Any] = {}
    if not args.skip_big:
        build_started = time.monotonic()
        store = cache_path(large, args.events)
        built = not (store / EVENTLOG_NAME).exists()
        if built:  # in a child: building holds the template in memory, and a fat parent
            # would hand its pages to every later child's ru_maxrss
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "make_log.py"), str(large), str(store)]
                + ["--events", str(args.events)],
                check=True,
            )
        build_s = time.monotonic() - build_started
        print(
            f"{big_label}: {store} ({'built' if built else 'cached'}, {build_s:.1f} s)", flush=True
        )
        logs_to_run.append((big_label, store, args.events))
        build = {
            "from": _shown(large),
            "by": f"bench/make_log.py --events {args.events}",
            "seconds": round(build_s, 1),
            "cached": not built,
        }
    todomvc = args.todomvc or _default_todomvc(large)
    if todomvc is not None and todomvc.exists():
        todomvc = todomvc.resolve()
        todomvc_events = _count(todomvc)
        print(f"todomvc: {todomvc} ({todomvc_events:,} events)", flush=True)
        logs_to_run.append(("todomvc", todomvc, todomvc_events))
    # Rounds: each run measures every log, so a slow spell of this shared machine lands on
    # both logs of a round instead of on one log's every run.
    floors: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in logs_to_run}
    replays: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in logs_to_run}
    # A second replay of large right after the big log's, per round: the linearity check
    # pairs the big replay with the mean of the large replays before and after it.
    brackets: list[dict[str, Any]] = []
    for run in range(args.runs):
        for label, source, _ in logs_to_run:
            floor, replay = measure_once(label, source, args.work)
            floors[label].append(floor)
            replays[label].append(replay)
            print(
                f"  round {run + 1}/{args.runs} {label}: replay {replay['seconds']:.2f} s "
                f"({replay['maxRssMB']:.0f} MB), floor {floor['seconds']:.2f} s",
                flush=True,
            )
            if label == big_label:
                target = args.work / "large-after-replay.db"
                after = run_child("replay", large, target)
                _remove_db(target)
                brackets.append(after)
                print(
                    f"  round {run + 1}/{args.runs} large again: replay {after['seconds']:.2f} s",
                    flush=True,
                )
    logs: dict[str, dict[str, Any]] = {
        label: summarize(label, source, events, floors[label], replays[label], args.work, args.keep)
        for label, source, events in logs_to_run
    }
    if build:
        logs[big_label]["build"] = build

    profiles = {} if args.no_profile else measure_profiles(logs_to_run, args.work)
    help_info = measure_help(args.runs)
    results = {
        "command": command,
        "date": dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.time() - started, 1),
        "git": git_info(),
        "machine": {
            **machine_info(),
            "loadavg1mStart": round(load_start[0], 2),
            "loadavg1mEnd": round(os.getloadavg()[0], 2),
        },
        "settings": {
            "runs": args.runs,
            "replayBatchSize": DEFAULT_BATCH,
            "targetCacheKiB": CACHE_KIB,
            "floorBatchSize": FLOOR_BATCH,
            # Which build of the hot-path modules the replays ran (events/_native.py).
            "build": sorted({r["build"] for runs in replays.values() for r in runs}),
        },
        "logs": logs,
        "profile": profiles,
        "help": help_info,
        "checks": checks(logs["large"], None if args.skip_big else logs[big_label], brackets),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print_table(logs, help_info)
    print()
    print_profiles(profiles)
    print(json.dumps(results["checks"], indent=2))
    print(f"wrote {args.out}")
    return 0


def _default_todomvc(large: Path) -> Path | None:
    """../shared/livestore/apps/todomvc/fixtures/large/todomvc, found from the ai-desk
    large fixture's place (../shared/livestore/fixtures/large/ai-desk)."""
    livestore = large.parent.parent.parent
    candidate = livestore / "apps" / "todomvc" / "fixtures" / "large" / "todomvc"
    return candidate if candidate.exists() else None


def _count(store: Path) -> int:
    from make_log import eventlog_path

    from events.sources import connect_readonly

    conn = connect_readonly(eventlog_path(store))
    try:
        return int(conn.execute("SELECT COUNT(*) FROM eventlog").fetchone()[0])
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
