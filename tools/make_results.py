"""Regenerate the classification results table (`make results`).

For each data set (the embedded Rotten Tomatoes snippets and SST-2, whose test split is the GLUE
SST-2 dev set papers report) it fits or fine-tunes, then evaluates on the test split:

    majority class, TF-IDF + logistic regression        bertlab baseline
    tiny BERT, random initialisation                     bertlab finetune --from-scratch
    tiny BERT, pretrained by `bertlab pretrain` on news  bertlab finetune --model PRETRAINED
                                                         (each tiny model at every --tiny-lr; the best
                                                         on validation is evaluated on test)
    MiniLM-L6 (the embedded real weights)                bertlab finetune --model minilm-l6

and writes OUTPUT/results.json and OUTPUT/results.md (accuracy with its 95% bootstrap interval,
macro-F1, CPU training time). Every number comes from the run folders it creates under --runs.

The two tiny models are the comparison that asks what pretraining buys, and one fine-tuning run
moves by a point or two with its seed alone. So the learning rate each keeps (chosen on validation
with seed 0) is run with every --tiny-seeds seed; their rows report the mean test accuracy over
the seeds, a bootstrap interval over test examples for that mean, and each seed's accuracy, and
the table gives the gain of pretraining with a paired bootstrap interval.

    python tools/make_results.py --pretrained runs/tiny-news --output results/classification
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = {"rotten_tomatoes": "Rotten Tomatoes (embedded)", "sst2": "SST-2 (GLUE dev = test here)"}


def bertlab(*args: str) -> None:
    cmd = [sys.executable, "-m", "bertlab.cli", *args]
    print("$ bertlab " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def neural_row(name: str, run: Path, data: str) -> dict:
    summary = read(run / "finetune_summary.json")
    metrics = read(run / f"eval-{data}-test" / "metrics.json")
    return {"model": name, "accuracy": metrics["accuracy"], "accuracy_ci": metrics["intervals"]["accuracy"],
            "macro_f1": metrics["macro_f1"], "train_seconds": summary["train_seconds"], "steps": summary["steps"]}


def correct_by_id(run: Path, data: str) -> dict[str, int]:
    """1 or 0 for each test example of a run's evaluation, keyed by example id."""
    lines = (run / f"eval-{data}-test" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return {p["id"]: int(p["predicted"] == p["label"]) for p in map(json.loads, lines)}


def bootstrap_mean_ci(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% percentile interval of the mean of `values` (one per test example) over resampled examples."""
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    return [float(v) for v in np.percentile(values[idx].mean(axis=1), [2.5, 97.5])]


def seed_row(label: str, runs_by_seed: dict[int, Path], data: str) -> tuple[dict, np.ndarray]:
    """A tiny model's row over its seeds, and its correctness matrix (examples in id order x seeds)."""
    seeds = sorted(runs_by_seed)
    per_seed = [neural_row(label, runs_by_seed[s], data) for s in seeds]
    correct = [correct_by_id(runs_by_seed[s], data) for s in seeds]
    ids = sorted(correct[0])
    if any(sorted(c) != ids for c in correct):
        raise SystemExit(f"{label}, {data}: the seeds' test predictions cover different examples")
    matrix = np.array([[c[i] for c in correct] for i in ids], dtype=np.float64)
    row = {"model": label, "accuracy": float(matrix.mean()), "accuracy_ci": bootstrap_mean_ci(matrix.mean(axis=1)),
           "macro_f1": float(np.mean([r["macro_f1"] for r in per_seed])),
           "train_seconds": round(float(np.mean([r["train_seconds"] for r in per_seed])), 1),
           "steps": per_seed[0]["steps"], "seeds": seeds,
           "accuracy_by_seed": {str(s): round(r["accuracy"], 4) for s, r in zip(seeds, per_seed)}}
    return row, matrix


def pretraining_gain(pre: np.ndarray, scratch: np.ndarray) -> dict:
    """Mean test accuracy of the pretrained minus the random-init model, with a paired bootstrap
    interval over test examples (each resample draws the same examples for both)."""
    diff = pre.mean(axis=1) - scratch.mean(axis=1)
    by_seed = pre.mean(axis=0) - scratch.mean(axis=0)
    return {"difference": float(diff.mean()), "ci": bootstrap_mean_ci(diff),
            "seeds_ahead": int((by_seed > 0).sum()), "seeds": int(len(by_seed))}


def validation_curve(run: Path) -> list[list[float]]:
    """[step, validation accuracy] of a run: the evaluation before training, then every logged one."""
    summary = read(run / "finetune_summary.json")
    points = [[0, round(summary["initial_validation"]["accuracy"], 4)]]
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "eval_accuracy" in record:
            points.append([record["step"], round(record["eval_accuracy"], 4)])
    return points


def check_output(out: Path) -> None:
    """OUTPUT may be new, or hold only what this script wrote: a results.json with its keys (never
    another file of that name), a results.md beside it, or nothing at all. Checked before any run."""
    if out.exists() and not out.is_dir():
        sys.exit(f"make_results: --output {out}: exists and is not a folder")
    found = out / "results.json"
    if found.exists():
        try:
            ours = {"tables", "pretraining_gain", "pretrained"} <= set(json.loads(found.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            sys.exit(f"make_results: --output {out}: its results.json was not written by make_results; "
                     f"nothing was changed, choose another folder")
    elif (out / "results.md").exists():
        sys.exit(f"make_results: --output {out}: holds a results.md but no results.json of make_results; "
                 f"nothing was changed, choose another folder")


def write_atomic(path: Path, text: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bertlab.common import atomic_write_text

    atomic_write_text(path, text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", default="runs/tiny-news", help="a `bertlab pretrain` run folder (tiny preset)")
    p.add_argument("--runs", default="runs/results", help="where the run folders go")
    p.add_argument("--output", default="results/classification")
    p.add_argument("--data", nargs="+", default=list(DATASETS))
    p.add_argument("--tiny-steps", type=int, default=1500, help="optimizer steps of each tiny fine-tuning run")
    p.add_argument("--tiny-lr", type=float, nargs="+", default=[3e-4, 1e-3],
                   help="learning rates tried for each tiny model (with the first --tiny-seeds seed); each keeps "
                        "the one with the best validation accuracy (the test split is evaluated only at that rate)")
    p.add_argument("--tiny-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="fine-tuning seeds of each tiny model at its kept learning rate; its row is their mean")
    p.add_argument("--minilm-steps", type=int, nargs="+", default=[1000, 2400],
                   help="optimizer steps of the MiniLM run on each data set (in --data order); 2400 steps on "
                        "SST-2 keep it under 15 minutes on 2 CPU cores")
    p.add_argument("--max-train-examples", type=int, help="cap the training examples (quick runs)")
    a = p.parse_args()

    runs, out = Path(a.runs), Path(a.output)
    check_output(out)
    runs.mkdir(parents=True, exist_ok=True)
    table: dict[str, list[dict]] = {}
    gains: dict[str, dict] = {}
    started = time.perf_counter()
    cap = ["--max-train-examples", str(a.max_train_examples)] if a.max_train_examples else []
    # Both tiny runs: the same size (the pretrained folder's config), budget and dropout (0.1, as BERT
    # fine-tunes; the pretraining run may have used another).
    tiny = ["--max-steps", str(a.tiny_steps), "--batch-size", "32", "--max-eval-examples", "2000", "--dropout", "0.1"]
    for data, minilm_steps in zip(a.data, a.minilm_steps * len(a.data)):
        rows = []
        base = runs / f"baseline-{data}"
        if not (base / "summary.json").is_file():
            bertlab("baseline", "--data", data, "--split", "test", "--output", str(base))
        for key, label in (("majority", "majority class"), ("tfidf_lr", "TF-IDF + logistic regression")):
            m = read(base / key / "metrics.json")
            rows.append({"model": label, "accuracy": m["accuracy"], "accuracy_ci": m["intervals"]["accuracy"],
                         "macro_f1": m["macro_f1"], "train_seconds": m.get("fit_seconds"), "steps": None})
        # Each tiny model is fine-tuned at every --tiny-lr and keeps its best on validation: a
        # pretrained encoder and a random one need not share a best learning rate.
        runs_spec = [
            ("tiny BERT, random init", "tiny-scratch", ["--from-scratch", "--model", a.pretrained, *tiny], a.tiny_lr),
            ("tiny BERT, pretrained on news", "tiny-pretrained", ["--model", a.pretrained, *tiny], a.tiny_lr),
            ("MiniLM-L6 (real pretrained weights)", "minilm",
             ["--model", "minilm-l6", "--max-steps", str(minilm_steps), "--batch-size", "32",
              "--max-eval-examples", "2000"], [1e-4]),
        ]
        matrices = {}
        for label, stem, flags, rates in runs_spec:
            seeds = a.tiny_seeds if stem.startswith("tiny") else [0]

            def run_dir(lr: float, seed: int) -> Path:
                name = f"{stem}-{data}" if len(rates) == 1 else f"{stem}-{data}-lr{lr:g}"
                return runs / (name if seed == seeds[0] else f"{name}-seed{seed}")

            def finetune(lr: float, seed: int) -> Path:
                run = run_dir(lr, seed)
                if not (run / "finetune_summary.json").is_file():
                    bertlab("finetune", "--data", data, "--output", str(run), "--seed", str(seed),
                            "--learning-rate", f"{lr:g}", *flags, *cap)
                return run

            tried = {}
            for lr in rates:
                run = finetune(lr, seeds[0])
                tried[lr] = (read(run / "finetune_summary.json")["validation"]["accuracy"], run)
            best_lr = max(tried, key=lambda lr: (tried[lr][0], -lr))  # ties: the smaller rate
            runs_by_seed = {seed: (tried[best_lr][1] if seed == seeds[0] else finetune(best_lr, seed))
                            for seed in seeds}
            for run in runs_by_seed.values():
                if not (run / f"eval-{data}-test" / "metrics.json").is_file():
                    bertlab("evaluate", "--model", str(run), "--data", data, "--split", "test")
            run = runs_by_seed[seeds[0]]
            if len(seeds) > 1:
                row, matrices[stem] = seed_row(label, runs_by_seed, data)
            else:
                row = neural_row(label, run, data)
            row["learning_rate"] = best_lr
            row["validation_accuracy_by_lr"] = {f"{lr:g}": round(v, 4) for lr, (v, _) in tried.items()}
            row["validation_curve"] = validation_curve(run)
            rows.append(row)
        if {"tiny-pretrained", "tiny-scratch"} <= set(matrices):
            gains[data] = pretraining_gain(matrices["tiny-pretrained"], matrices["tiny-scratch"])
        tfidf = rows[1]["accuracy"]
        for r in rows[2:]:
            r["below_tfidf"] = r["accuracy"] < tfidf
        table[data] = rows

    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores",
        "wall_seconds": round(time.perf_counter() - started, 1),
        "pretrained": a.pretrained,
        "tiny_seeds": a.tiny_seeds,
        "tables": table,
        "pretraining_gain": gains,
    }
    out.mkdir(parents=True, exist_ok=True)
    check_output(out)  # again: the folder may have changed during the runs
    write_atomic(out / "results.json", json.dumps(result, indent=2) + "\n")
    lines = [f"Test-split results ({result['date']}, {result['machine']}; made by `make results`). Tiny BERT rows: "
             f"the mean over {len(a.tiny_seeds)} fine-tuning seeds (each seed's accuracy after it), with a bootstrap "
             "interval over test examples for that mean.", ""]
    for data, rows in table.items():
        lines += [f"**{DATASETS.get(data, data)}**", "",
                  "| model | accuracy (95% CI) | macro-F1 | learning rate (validation accuracy) | CPU training time |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lo, hi = r["accuracy_ci"]
            secs = r["train_seconds"]
            note = " (below TF-IDF + LR)" if r.get("below_tfidf") else ""
            by_lr = r.get("validation_accuracy_by_lr")
            lr_cell = "—" if not by_lr else ", ".join(
                (f"**{k}** ({v:.3f})" if float(k) == r["learning_rate"] and len(by_lr) > 1 else f"{k} ({v:.3f})")
                for k, v in by_lr.items())
            seeds = r.get("accuracy_by_seed")
            seed_note = "" if not seeds else "; seeds " + ", ".join(f"{v:.3f}" for v in seeds.values())
            lines.append(f"| {r['model']}{note} | {r['accuracy']:.3f} ({lo:.3f}–{hi:.3f}){seed_note} | "
                         f"{r['macro_f1']:.3f} | {lr_cell} | {'—' if secs is None else f'{secs:.0f} s'} |")
        lines.append("")
        if data in gains:
            g = gains[data]
            lines += [f"Pretraining on news minus random init, mean over {g['seeds']} fine-tuning seeds: "
                      f"{g['difference']:+.3f} (paired 95% bootstrap interval {g['ci'][0]:+.3f} to {g['ci'][1]:+.3f}); "
                      f"pretrained ahead with {g['seeds_ahead']} of {g['seeds']} seeds.", ""]
    write_atomic(out / "results.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
