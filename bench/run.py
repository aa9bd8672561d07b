"""`make bench` / `make bench-quick`: run every bench, print one table of every figure, write
bench/results/latest.json.

    .venv/bin/python bench/run.py [name …]          (BENCH_QUICK=1 for the quick mode; names pick benches)
    .venv/bin/python bench/run.py --markdown         (latest.json as the table in docs/operations.md)

Each bench is a script run in its own process with BENCH_RESULTS_FILE set; it hands its figures over through
bench/report.py `figure(name, value, unit, goal)`. A bench that fails (non-zero exit, or a timeout) is a row of
the table (`<bench>` … FAILED), its figures so far are kept, and this exits non-zero. Goals are compared where
they read `>= x`, `<= x` or `= x` (x in the figure's unit); a missed goal is marked, not an error: figures on a
shared 2-core machine are noisy, and ratios (both sides from the same run) are what we track.

Full mode runs the benches one after another. Quick mode starts them all at once: they set up side by side, then
each in turn measures with the machine to itself (bench/turns.py: `with measuring():`), then all clean up; each
bench's output is printed once all have finished.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import quick  # noqa: E402
from bench.turns import ENV as TURN_ENV  # noqa: E402


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    # Settings for the quick mode, for a bench that does not read report.quick() itself.
    quick_env: dict[str, str] = field(default_factory=dict)


# The one list of benches (make bench runs these, in this order). bench/echo_asgi.py, report.py, run.py,
# scratch.py and servers.py are helpers, not benches.
BENCHES = [
    Bench("ledger", "bench/ledger.py"),
    Bench("chat", "bench/chat.py"),
    Bench("reconnect", "bench/reconnect.py"),
    Bench("moments", "bench/moments.py"),
    Bench("money", "bench/money.py"),
    Bench("loans", "bench/loans.py"),
]
TIMEOUT_SECONDS = 300 if quick() else 1200  # per bench
RESULTS = ROOT / "bench" / "results" / "latest.json"


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    revision = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "backend", "bench")
    return revision + ("-dirty" if dirty else "")


def goal_met(value: float | None, goal: str) -> bool | None:
    """True/False for a goal of the form `>= x`, `<= x` or `= x` (the rest of the goal is words); None when
    the goal says no such thing or there is no value."""
    match = re.match(r"\s*(>=|<=|=)\s*(-?[\d.,]+)", goal or "")
    if value is None or match is None:
        return None
    bound = float(match.group(2).replace(",", ""))
    return {">=": value >= bound, "<=": value <= bound, "=": abs(value - bound) < 1e-9}[match.group(1)]


def bench_env(bench: Bench, results_file: Path) -> dict[str, str]:
    env = {**os.environ, "BENCH_RESULTS_FILE": str(results_file),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop(TURN_ENV, None)
    if quick():
        env = {**bench.quick_env, **env}  # the caller's own BENCH_* settings still win
    return env


def interrupt(process: subprocess.Popen) -> None:
    """SIGINT (KeyboardInterrupt: its finally blocks stop servers, drop databases), then SIGKILL after 60 s."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_bench(bench: Bench, results_file: Path, prepare_needed: bool = True) -> tuple[int | str, float]:
    """One bench alone, start to end (`make bench`)."""
    print(f"\n== {bench.script}{' (quick)' if quick() else ''}", flush=True)
    began = time.perf_counter()
    # Its own process group, so that a bench that overruns can be stopped with everything it started.
    process = subprocess.Popen([sys.executable, bench.script], cwd=ROOT, env=bench_env(bench, results_file),
                               start_new_session=True)
    try:
        code: int | str = process.wait(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        code = f"timeout after {TIMEOUT_SECONDS} s"
        interrupt(process)
    if prepare_needed:
        drop_leftovers(process.pid)
    return code, time.perf_counter() - began


@dataclass
class Running:
    """A bench started side by side with the others (quick mode) and where it is: setup → ready → measuring →
    done → exited. `times` are perf_counter stamps of each step."""

    bench: Bench
    process: subprocess.Popen
    to_bench: int
    from_bench: int
    log: Path
    state: str = "setup"
    code: int | str | None = None
    times: dict[str, float] = field(default_factory=dict)
    heard: bytes = b""

    def tell(self, word: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self.to_bench, f"{word}\n".encode())

    def listen(self) -> list[str]:
        """The words the bench wrote since last asked (an empty list; "eof" once its end of the pipe closed)."""
        try:
            chunk = os.read(self.from_bench, 4096)
        except BlockingIOError:
            return []
        if not chunk:
            return ["eof"]
        self.heard += chunk
        *words, self.heard = self.heard.split(b"\n")
        return [w.decode() for w in words]


def run_side_by_side(chosen: list[Bench], tmp: Path, prepare_needed: bool) -> dict[str, dict]:
    """Quick mode: every bench starts at once and sets up side by side; once all are ready (or gone), each in
    turn gets the machine to itself for its measured phases (bench/turns.py); then all clean up together.
    Returns per bench: exit code, seconds alive, set-up seconds, turn seconds."""
    running: dict[str, Running] = {}
    t0 = time.perf_counter()
    for bench in chosen:
        to_read, to_write = os.pipe()  # runner → bench
        from_read, from_write = os.pipe()  # bench → runner
        env = bench_env(bench, tmp / f"{bench.name}.jsonl")
        env[TURN_ENV] = f"{to_read},{from_write}"
        log = tmp / f"{bench.name}.log"
        with open(log, "w") as out:
            process = subprocess.Popen([sys.executable, bench.script], cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       pass_fds=(to_read, from_write))
        os.close(to_read)
        os.close(from_write)
        os.set_blocking(from_read, False)
        running[bench.name] = Running(bench, process, to_write, from_read, log, times={"start": t0})
    print(f"\n== quick mode: {len(chosen)} benches set up side by side, then measure one at a time", flush=True)

    def poll(run: Running) -> None:
        for word in run.listen():
            if word == "ready" and run.state == "setup":
                run.state, run.times["ready"] = "ready", time.perf_counter()
            elif word == "done" and run.state == "measuring":
                run.state, run.times["done"] = "done", time.perf_counter()
            elif word == "eof" and run.state in ("setup", "ready", "measuring"):
                run.state = "quiet"  # it will not say anything more: wait for it to exit
        if run.code is None and run.process.poll() is not None:
            run.code, run.times["exit"] = run.process.returncode, time.perf_counter()
            if run.state != "done":
                run.state = "exited"

    def wait_until(done, deadline: float) -> bool:
        while time.perf_counter() < deadline:
            for run in running.values():
                poll(run)
            if done():
                return True
            time.sleep(0.02)
        return False

    def give_up(run: Running, stage: str) -> None:
        if run.code is None:
            interrupt(run.process)
            run.code, run.times["exit"] = f"timeout after {TIMEOUT_SECONDS} s ({stage})", time.perf_counter()
        run.state = "exited"

    try:
        # 1. set-up, side by side: until everyone is ready to measure (or gone)
        if not wait_until(lambda: all(r.state != "setup" for r in running.values()), t0 + TIMEOUT_SECONDS):
            for run in running.values():
                if run.state == "setup":
                    give_up(run, "set-up")
        print(f"   set-up done in {time.perf_counter() - t0:.1f} s", flush=True)
        # 2. one at a time: the measured phases
        for run in running.values():
            if run.state != "ready":
                continue
            run.state, run.times["go"] = "measuring", time.perf_counter()
            run.tell("go")
            if not wait_until(lambda run=run: run.state != "measuring" or run.code is not None,
                              run.times["go"] + TIMEOUT_SECONDS):
                give_up(run, "measuring")
            run.times.setdefault("done", time.perf_counter())
            print(f"   {run.bench.name}: measured in {run.times['done'] - run.times['go']:.1f} s", flush=True)
        # 3. clean-up, side by side
        released = time.perf_counter()
        print(f"   all measured after {released - t0:.1f} s; cleaning up", flush=True)
        for run in running.values():
            run.tell("release")
        if not wait_until(lambda: all(r.code is not None for r in running.values()),
                          time.perf_counter() + TIMEOUT_SECONDS):
            for run in running.values():
                give_up(run, "clean-up")
        print(f"   cleaned up in {time.perf_counter() - released:.1f} s", flush=True)
    finally:
        for run in running.values():
            if run.code is None:
                give_up(run, "interrupted")
            os.close(run.to_bench)
            os.close(run.from_bench)
            if prepare_needed:
                drop_leftovers(run.process.pid)
    out: dict[str, dict] = {}
    for name, run in running.items():
        print(f"\n== {run.bench.script} (quick)\n{run.log.read_text()}", end="", flush=True)
        t = run.times
        out[name] = {"exit": run.code, "seconds": round(t["exit"] - t0, 1),
                     "setup_seconds": round(t["ready"] - t0, 1) if "ready" in t else None,
                     "measured_seconds": round(t["done"] - t["go"], 1) if "go" in t else None}
    return out


def drop_leftovers(pid: int) -> None:
    """A bench killed before its finally ran leaves its scratch database (named after its pid): drop it."""
    from bench.scratch import admin_sql, admin_url

    for (name,) in admin_sql(admin_url(), "SELECT datname FROM pg_database WHERE datname ~ "
                                          f"'^quanzi_bench_[a-z0-9]+_{pid}$'"):
        print(f"dropping the scratch database {name} its bench left behind")
        admin_sql(admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def show(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def migrate_template() -> None:
    from bench.scratch import ensure_template

    ensure_template()


def main(argv: list[str], *, benches: list[Bench] = BENCHES, results: Path = RESULTS,
         prepare=migrate_template) -> int:
    unknown = set(argv) - {b.name for b in benches}
    if unknown:
        raise SystemExit(f"unknown bench(es) {sorted(unknown)}; known: {[b.name for b in benches]}")
    chosen = [b for b in benches if not argv or b.name in argv]
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    prepare()  # the scratch databases' template: migrated once, outside every bench's timing
    figures: list[dict] = []
    benches: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="quanzi-bench-results-") as tmp:
        for bench in chosen:
            (Path(tmp) / f"{bench.name}.jsonl").touch()
        if quick():
            timings = run_side_by_side(chosen, Path(tmp), prepare is migrate_template)
        else:
            timings = {}
            for bench in chosen:
                code, seconds = run_bench(bench, Path(tmp) / f"{bench.name}.jsonl", prepare is migrate_template)
                timings[bench.name] = {"exit": code, "seconds": round(seconds, 1)}
        for bench in chosen:
            results_file = Path(tmp) / f"{bench.name}.jsonl"
            mine = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
            for row in mine:
                row["bench"] = bench.name
                row["met"] = goal_met(row["value"], row["goal"])
            figures.extend(mine)
            benches[bench.name] = {"script": bench.script, **timings[bench.name], "figures": len(mine)}

    failed = {name: b for name, b in benches.items() if b["exit"] != 0}
    mode = "quick" if quick() else "full"
    print(f"\n== make bench{'-quick' if quick() else ''}: {len(figures)} figures from {len(benches)} benches "
          f"in {time.perf_counter() - t0:.0f} s, {os.cpu_count()} cores, revision {git_revision()}")
    print(f"{'name':48} {'value':>14} {'unit':12} {'goal':28} met")
    for bench in chosen:
        b = benches[bench.name]
        if b["exit"] != 0:
            print(f"{bench.name:48} {'FAILED':>14} {'':12} {'exit ' + str(b['exit']):28} no")
        elif not b["figures"]:
            print(f"{bench.name:48} {'no figures':>14} {'':12} {'(it uses no report.figure)':28}")
        for row in (r for r in figures if r["bench"] == bench.name):
            met = {True: "yes", False: "NO", None: ""}[row["met"]]
            print(f"{row['name']:48} {show(row['value']):>14} {row['unit']:12} {row['goal']:28} {met}")

    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "date": started.isoformat(timespec="seconds"),
        "mode": mode,
        "git_revision": git_revision(),
        "cores": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - t0, 1),
        "benches": benches,
        "figures": {row["name"]: {k: row[k] for k in ("value", "unit", "goal", "met", "bench")} for row in figures},
    }, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {results}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


def markdown(results: Path = RESULTS) -> str:
    """latest.json as the Markdown table docs/operations.md carries (`bench/run.py --markdown`)."""
    data = json.loads(results.read_text())
    lines = [f"Run of {data['date'][:10]}, {data['mode']} mode, revision `{data['git_revision']}`, {data['cores']} cores, "
             f"load average at the end {data['load_average_at_end'][0]}.", "",
             "| figure | value | unit | goal | met |", "|---|---:|---|---|---|"]
    for name, bench in data["benches"].items():
        if bench["exit"] != 0:
            lines.append(f"| `{name}` | FAILED | | exit {bench['exit']} | no |")
    for name, f in data["figures"].items():
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        lines.append(f"| `{name}` | {show(f['value'])} | {f['unit']} | {f['goal']} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown())
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
