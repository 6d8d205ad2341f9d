"""The labelled-budget experiment: what pretraining buys at each number of labelled examples.

    python tools/label_budget.py --pretrained runs/tiny-news --output results/classification \
        [--data rotten_tomatoes sst2] [--sizes 100 300 1000 3000 all] [--models tiny-random tiny-pretrained tfidf]

For each data set, each N in --sizes and each seed, N labelled training examples are drawn (a
seeded hash of the row ids: `bertlab finetune --max-train-examples N --seed S`; each seed draws
other examples, and every model at one seed sees the same draw, so models are compared in pairs).
Each model is then fitted on them:

    tiny-random        bertlab finetune --model PRETRAINED --from-scratch   (the same size and vocabulary)
    tiny-pretrained    bertlab finetune --model PRETRAINED                  (`bertlab pretrain`'s weights)
    minilm-random      bertlab finetune --model minilm-l6 --from-scratch
    minilm-pretrained  bertlab finetune --model minilm-l6
    tfidf              TF-IDF + logistic regression (C chosen on validation, as `bertlab baseline`)

A neural model's learning rate is chosen for each model and N on the validation split with the
first seed (the best validation accuracy; ties go to the smaller rate), and only that rate is run
with the other seeds and evaluated on the test split. Validation is the data set's whole
validation split at every N: bertlab's choice, which makes the choice of rate and of the best
checkpoint easier than a reader holding only N labels would find it.

Steps grow with N (`steps_for`): enough passes over a small set to fit it, and at most the
budget `make results` gives a run on all the data.

Writes, after every finished point (a killed run keeps what it had; run folders already finished
under --runs are read, not run again):

    OUTPUT/label_budget.json   a list of records (the file is that list), one per data set, N, model
                               and seed, each with data, n_labels, model, seed, test_accuracy (and
                               learning_rate, validation_accuracy, steps, train_seconds)
    OUTPUT/label_budget_meta.json  date, machine, --pretrained, seeds and the last call's seconds
    OUTPUT/label_budget.md     mean test accuracy with a 95% t-interval over seeds at each N, and
                               each pretrained model minus its random-init twin, paired by seed
    OUTPUT/label_budget.png    accuracy against N (log scale) with those intervals

With --along N, it also fine-tunes tiny-pretrained at N labels from every checkpoint the
pretraining run kept (`bertlab pretrain --keep-checkpoints`), and from step 0 (random init, the
tiny-random runs), at the learning rate tiny-pretrained chose at that N, with every seed:

    OUTPUT/label_budget_along.json  records of data, n_labels, step, seed, test_accuracy, and the
                                    run's held-out MLM loss at each evaluated step
    OUTPUT/label_budget_along.png   downstream accuracy against the pretraining step, beside the
                                    held-out MLM loss: when fine-tuning starts to profit
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("tiny-random", "tiny-pretrained", "minilm-random", "minilm-pretrained", "tfidf")
TWINS = {"tiny-pretrained": "tiny-random", "minilm-pretrained": "minilm-random"}
# Learning rates tried per model (the first seed chooses); MiniLM's are about its default, 1e-4.
RATES = {"tiny-random": (3e-4, 1e-3, 3e-3), "tiny-pretrained": (3e-4, 1e-3, 3e-3),
         "minilm-random": (1e-4, 3e-4), "minilm-pretrained": (5e-5, 1e-4)}
# (batch size, passes over N examples, fewest steps, most steps): the most is what `make results`
# gives a run on all the data (tiny: 1,500 steps of 32).
SCHEDULE = {"tiny": (32, 20, 200, 1500), "minilm": (32, 10, 100, 1000)}
# The starting weights have left the unigram plateau once their held-out MLM loss is this many nats
# below the run's first evaluation (bertlab's rule of thumb, read off results/pretrain/tiny-news:
# 6.57 at step 1,000, still 6.23 at 6,000 on the plateau, 5.91 at 7,000 and 5.04 at 9,000 off it).
PLATEAU_DROP = 0.5
# Student's t quantile (0.975) for n - 1 degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def steps_for(model: str, n: int) -> int:
    batch, passes, fewest, most = SCHEDULE[model.split("-")[0]]
    return int(min(most, max(fewest, math.ceil(passes * n / batch))))


def starting_point(pretrained: Path) -> dict | None:
    """Where in its pretraining run the weights in `pretrained` stand: the run's held-out MLM loss at
    their step and at its first evaluation, and whether they have left the plateau on which the model
    only knows how often each word piece occurs (chapter 7). `pretrained` is a `bertlab pretrain` run
    folder (its final weights) or one of its checkpoints/step-N folders; None when the run's
    metrics.jsonl or the evaluation at that step is missing."""
    pretrained = Path(pretrained)
    if pretrained.parent.name == "checkpoints" and pretrained.name.startswith("step-"):
        run, step = pretrained.parent.parent, int(pretrained.name.split("-")[1])
    elif (pretrained / "summary.json").is_file():
        run, step = pretrained, json.loads((pretrained / "summary.json").read_text(encoding="utf-8"))["steps"]
    else:
        return None
    try:
        evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines())
                 if "eval_mlm_loss" in r]
    except (OSError, ValueError):
        return None
    at = [r for r in evals if r["step"] == step]
    if not at:
        return None
    first, loss = evals[0], at[0]["eval_mlm_loss"]
    return {"step": step, "heldout_mlm_loss": round(loss, 3), "first_step": first["step"],
            "first_heldout_mlm_loss": round(first["eval_mlm_loss"], 3),
            "left_plateau": bool(loss <= first["eval_mlm_loss"] - PLATEAU_DROP)}


def plateau_line(start: dict | None) -> str:
    """One line for the table and the console about the starting weights of tiny-pretrained."""
    if start is None:
        return "tiny-pretrained starts from weights whose pretraining progress is unknown (no held-out MLM loss at their step)."
    where = (f"tiny-pretrained starts from pretraining step {start['step']:,}: held-out MLM loss "
             f"{start['heldout_mlm_loss']:.2f}, against {start['first_heldout_mlm_loss']:.2f} at step {start['first_step']:,}")
    if start["left_plateau"]:
        return where + f" (at least {PLATEAU_DROP} below: off the word-frequency plateau)."
    return (where + f". **Warning: less than {PLATEAU_DROP} below, so the model is still on the word-frequency plateau "
            "(chapter 7)**; fine-tuned from there it can do worse than random init, and its gap says nothing about "
            "a model pretrained past the plateau. Pretrain longer.")


def t_interval(values) -> list[float]:
    """95% interval of the mean of `values` (one per seed), by Student's t; a point for one value."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return [float(v.mean()), float(v.mean())]
    half = T975.get(len(v) - 1, 1.96) * v.std(ddof=1) / math.sqrt(len(v))
    return [float(v.mean() - half), float(v.mean() + half)]


def _order(item: tuple) -> tuple:
    """Data set by name, then N by number (1,000 after 300), then the models in MODELS' order."""
    (data, n, model), _ = item
    return data, n, MODELS.index(model)


def summarize(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(points, gains): mean test accuracy with its interval for each data, N and model; and for each
    pretrained model present with its random twin, the per-seed differences and their interval."""
    by_key: dict[tuple, dict[int, float]] = {}
    for r in records:
        by_key.setdefault((r["data"], r["n_labels"], r["model"]), {})[r["seed"]] = r["test_accuracy"]
    points = [{"data": d, "n_labels": n, "model": m, "seeds": len(acc), "mean": float(np.mean(list(acc.values()))),
               "ci": t_interval(list(acc.values()))} for (d, n, m), acc in sorted(by_key.items(), key=_order)]
    gains = []
    for (d, n, m), acc in sorted(by_key.items(), key=_order):
        twin = by_key.get((d, n, TWINS.get(m, "")))
        if twin is None:
            continue
        seeds = sorted(set(acc) & set(twin))
        diff = [acc[s] - twin[s] for s in seeds]
        if not diff:
            continue
        gains.append({"data": d, "n_labels": n, "model": m, "against": TWINS[m], "seeds": len(seeds),
                      "difference": float(np.mean(diff)), "ci": t_interval(diff),
                      "seeds_ahead": int(sum(x > 0 for x in diff))})
    return points, gains


def markdown(records: list[dict], meta: dict) -> str:
    points, gains = summarize(records)
    lines = [f"Labelled-budget experiment ({meta['date']}, {meta['machine']}; made by `tools/label_budget.py`). "
             "Test accuracy, mean over seeds with a 95% t-interval over seeds; each seed draws its own N training "
             "examples, shared by every model at that seed. Learning rates chosen on validation with the first "
             "seed.", ""]
    if "start" in meta and any(r["model"] == "tiny-pretrained" for r in records):
        lines += [plateau_line(meta["start"]), ""]
    for data in sorted({p["data"] for p in points}):
        models = [m for m in MODELS if any(p["model"] == m and p["data"] == data for p in points)]
        lines += [f"**{data}**", "", "| N | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        for n in sorted({p["n_labels"] for p in points if p["data"] == data}):
            cells = []
            for m in models:
                p = next((p for p in points if (p["data"], p["n_labels"], p["model"]) == (data, n, m)), None)
                cells.append("—" if p is None else f"{p['mean']:.3f} ({p['ci'][0]:.3f}–{p['ci'][1]:.3f}), "
                                                   f"{p['seeds']} seeds")
            lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
        lines.append("")
        for g in (g for g in gains if g["data"] == data):
            lo, hi = g["ci"]
            verdict = "excludes zero" if lo > 0 or hi < 0 else "includes zero"
            lines.append(f"- N = {g['n_labels']:,}: {g['model']} minus {g['against']}: {g['difference']:+.3f} "
                         f"(95% interval over {g['seeds']} paired seeds {lo:+.3f} to {hi:+.3f}, {verdict}); "
                         f"ahead with {g['seeds_ahead']} of {g['seeds']} seeds")
        lines.append("")
    return "\n".join(lines)


def save_figure(records: list[dict], path: Path) -> None:
    from bertlab.plots import plot_label_budget

    points, _ = summarize(records)
    datas = sorted({p["data"] for p in points})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datas), figsize=(5.5 * len(datas), 4), squeeze=False)
    for ax, data in zip(axes[0], datas):
        plot_label_budget([p for p in points if p["data"] == data], ax=ax, title=data)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", default="runs/tiny-news", help="a `bertlab pretrain` run folder (tiny preset)")
    p.add_argument("--runs", default="runs/label-budget", help="where the run folders go")
    p.add_argument("--output", default="results/classification")
    p.add_argument("--data", nargs="+", help="data sets (default: rotten_tomatoes, and sst2 when the data folder "
                   "($BERTLAB_DATA_DIR) holds it)")
    p.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "3000", "all"],
                   help="labelled training examples per run; 'all' is the whole training split")
    p.add_argument("--models", nargs="+", default=["tfidf", "tiny-random", "tiny-pretrained"], choices=MODELS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--tokenizer", help="tokenizer folder of --pretrained when it has none (a checkpoint folder)")
    p.add_argument("--max-steps", type=int, help="cap every run's steps (quick checks; not for results)")
    p.add_argument("--along", type=int, metavar="N",
                   help="also fine-tune from each of --pretrained's checkpoints at N labels (N must be in --sizes)")
    a = p.parse_args()
    if a.data is None:
        data_dir = os.environ.get("BERTLAB_DATA_DIR")
        a.data = ["rotten_tomatoes"] + (["sst2"] if data_dir and (Path(data_dir) / "sst2" / "train.tsv").is_file() else [])

    from bertlab.baseline import TfidfLogReg
    from bertlab.common import atomic_write_text
    from bertlab.data import load_classification
    from bertlab.evaluate import EvaluateArgs, run_evaluation
    from bertlab.finetune import FinetuneArgs, run_finetune, subset_indices

    runs, out = Path(a.runs), Path(a.output)
    found, meta_file = out / "label_budget.json", out / "label_budget_meta.json"
    records: list[dict] = []
    if found.exists():  # earlier records of points not run again now are kept; another file is left alone
        try:
            records = json.loads(found.read_text(encoding="utf-8"))
            earlier = json.loads(meta_file.read_text(encoding="utf-8"))["pretrained"]
            if not all({"data", "n_labels", "model", "seed", "test_accuracy"} <= set(r) for r in records):
                raise ValueError
        except (OSError, ValueError, TypeError, KeyError):
            sys.exit(f"label_budget: {found} was not written by this tool; nothing was changed, choose another --output")
        if earlier != a.pretrained:
            sys.exit(f"label_budget: {found} holds runs from --pretrained {earlier}, not {a.pretrained}; nothing was "
                     f"changed, choose another --output")
    else:
        theirs = [f.name for f in (meta_file, out / "label_budget.md", out / "label_budget.png",
                                   out / "label_budget_along.json") if f.exists()]
        if theirs:
            sys.exit(f"label_budget: {out} holds {', '.join(theirs)} but no label_budget.json of this tool; nothing "
                     f"was changed, choose another --output")
    runs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()} CPU, "
            f"{os.cpu_count()} cores", "pretrained": a.pretrained, "seeds": a.seeds}
    meta["start"] = starting_point(Path(a.pretrained))
    if "tiny-pretrained" in a.models:
        off = (meta["start"] or {}).get("left_plateau")
        print(plateau_line(meta["start"]).replace("**", ""), file=sys.stdout if off else sys.stderr, flush=True)

    def keep(record: dict) -> None:
        key = (record["data"], record["n_labels"], record["model"], record["seed"])
        records[:] = [r for r in records if (r["data"], r["n_labels"], r["model"], r["seed"]) != key] + [record]
        records.sort(key=lambda r: (r["data"], r["n_labels"], MODELS.index(r["model"]), r["seed"]))
        meta["wall_seconds_last_call"] = round(time.perf_counter() - started, 1)
        atomic_write_text(found, json.dumps(records, indent=1) + "\n")
        atomic_write_text(meta_file, json.dumps(meta, indent=1) + "\n")
        atomic_write_text(out / "label_budget.md", markdown(records, meta) + "\n")

    quiet = lambda msg: None  # noqa: E731
    for data_name in a.data:
        data = load_classification(data_name)
        train, val, test = (data.splits[s] for s in ("train", "validation", "test"))
        for size in a.sizes:
            n = len(train) if size == "all" else int(size)
            if n > len(train):
                print(f"{data_name}: N = {n} is more than the {len(train)} training examples; skipped")
                continue
            for model in a.models:
                if model == "tfidf":
                    for seed in a.seeds:
                        part = train if n == len(train) else train.select(subset_indices(train.ids, n, seed, "train"))
                        clf = TfidfLogReg().fit(part.texts, part.labels, data.num_labels, val.texts, val.labels)
                        acc = float(np.mean(clf.predict_proba(test.texts).argmax(1) == np.asarray(test.labels)))
                        keep({"data": data_name, "n_labels": n, "model": model, "seed": seed, "test_accuracy": acc,
                              "C": clf.C, "validation_accuracy": clf.validation_accuracy[str(clf.C)]})
                    print(f"{data_name} N={n} tfidf: done", flush=True)
                    continue
                family = model.split("-")[0]
                start_from = a.pretrained if family == "tiny" else "minilm-l6"
                steps = steps_for(model, n) if a.max_steps is None else min(a.max_steps, steps_for(model, n))
                batch = SCHEDULE[family][0]

                def run(lr: float, seed: int) -> Path:
                    folder = runs / f"{data_name}-n{n}-{model}-lr{lr:g}-seed{seed}"
                    summary = folder / "finetune_summary.json"
                    made_from(folder, start_from)
                    if not summary.is_file():
                        t0 = time.perf_counter()
                        run_finetune(FinetuneArgs(
                            data=data_name, model=start_from, from_scratch=model.endswith("random"),
                            tokenizer=a.tokenizer if family == "tiny" else None,
                            dropout=0.1, max_train_examples=None if n == len(train) else n, max_steps=steps,
                            batch_size=batch, learning_rate=lr, seed=seed, output=str(folder), progress=False),
                            log=quiet)
                        acc = json.loads(summary.read_text())["validation"]["accuracy"]
                        print(f"{data_name} N={n} {model} lr={lr:g} seed={seed}: {steps} steps, validation "
                              f"{acc:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
                    return folder

                tried = {lr: run(lr, a.seeds[0]) for lr in RATES[model]}
                val_acc = {lr: json.loads((f / "finetune_summary.json").read_text())["validation"]["accuracy"]
                           for lr, f in tried.items()}
                best = max(val_acc, key=lambda lr: (val_acc[lr], -lr))
                for seed in a.seeds:
                    folder = tried[best] if seed == a.seeds[0] else run(best, seed)
                    metrics = folder / "eval-test" / "metrics.json"
                    if not metrics.is_file():
                        run_evaluation(EvaluateArgs(model=str(folder), data=data_name, split="test",
                                                    output=str(folder / "eval-test"), bootstrap=0, progress=False),
                                       log=quiet)
                    summary = json.loads((folder / "finetune_summary.json").read_text())
                    keep({"data": data_name, "n_labels": n, "model": model, "seed": seed,
                          "test_accuracy": json.loads(metrics.read_text())["accuracy"], "learning_rate": best,
                          "validation_accuracy": summary["validation"]["accuracy"],
                          **({"validation_accuracy_by_lr": {f"{lr:g}": v for lr, v in val_acc.items()}}
                             if seed == a.seeds[0] else {}),
                          "steps": summary["steps"], "batch_size": batch, "train_seconds": summary["train_seconds"]})
                print(f"{data_name} N={n} {model}: lr {best:g} kept; test "
                      + ", ".join(f"{r['test_accuracy']:.3f}" for r in records
                                  if (r["data"], r["n_labels"], r["model"]) == (data_name, n, model)), flush=True)
    if records:
        save_figure(records, out / "label_budget.png")
    print(markdown(records, meta))
    if a.along is not None:
        along(a, records, runs, out)
    return 0


def made_from(run: Path, start: str) -> None:
    """A run folder of an earlier call is reused only if it was fine-tuned from the same weights."""
    saved = run / "args.json"
    if saved.is_file() and json.loads(saved.read_text(encoding="utf-8")).get("model") != start:
        sys.exit(f"label_budget: {run} was fine-tuned from other weights than {start}; choose another --runs")


def pretraining_checkpoints(pretrained: Path) -> dict[int, Path]:
    """step -> weights folder: every kept checkpoint of a pretraining run, and its final model."""
    found = {int(f.name.split("-")[1]): f for f in sorted((pretrained / "checkpoints").glob("step-*"))
             if (f / "model.safetensors").is_file()}
    summary = pretrained / "summary.json"
    if summary.is_file():
        found[json.loads(summary.read_text(encoding="utf-8"))["steps"]] = pretrained
    return found


def along(a, records: list[dict], runs: Path, out: Path) -> None:
    from bertlab.common import atomic_write_text
    from bertlab.evaluate import EvaluateArgs, run_evaluation
    from bertlab.finetune import FinetuneArgs, run_finetune

    pretrained = Path(a.pretrained)
    points = pretraining_checkpoints(pretrained)
    heldout = [(r["step"], r["eval_mlm_loss"]) for r in map(json.loads, (pretrained / "metrics.jsonl").read_text(
        encoding="utf-8").splitlines()) if "eval_mlm_loss" in r]
    rows = []
    for data_name in a.data:
        base = {r["seed"]: r for r in records if (r["data"], r["n_labels"], r["model"]) == (data_name, a.along,
                                                                                            "tiny-pretrained")}
        random = {r["seed"]: r for r in records if (r["data"], r["n_labels"], r["model"]) == (data_name, a.along,
                                                                                              "tiny-random")}
        if not base:
            sys.exit(f"label_budget: --along {a.along}: no tiny-pretrained records at N = {a.along} for {data_name}")
        lr = base[min(base)]["learning_rate"]
        rows += [{"data": data_name, "n_labels": a.along, "step": 0, "seed": s, "test_accuracy": r["test_accuracy"]}
                 for s, r in random.items()]
        for step, folder in sorted(points.items()):
            for seed in a.seeds:
                run = runs / f"{data_name}-n{a.along}-along-step{step}-lr{lr:g}-seed{seed}"
                made_from(run, str(folder))
                if not (run / "finetune_summary.json").is_file():
                    steps = steps_for("tiny-pretrained", a.along)
                    run_finetune(FinetuneArgs(
                        data=data_name, model=str(folder), tokenizer=str(a.tokenizer or pretrained), dropout=0.1,
                        max_train_examples=a.along, max_steps=steps if a.max_steps is None else min(a.max_steps, steps),
                        batch_size=SCHEDULE["tiny"][0], learning_rate=lr, seed=seed, output=str(run),
                        progress=False), log=lambda msg: None)
                metrics = run / "eval-test" / "metrics.json"
                if not metrics.is_file():
                    run_evaluation(EvaluateArgs(model=str(run), data=data_name, split="test", output=str(metrics.parent),
                                                bootstrap=0, progress=False), log=lambda msg: None)
                acc = json.loads(metrics.read_text())["accuracy"]
                rows.append({"data": data_name, "n_labels": a.along, "step": step, "seed": seed, "test_accuracy": acc})
                print(f"{data_name} N={a.along} from pretraining step {step}, seed {seed}: test {acc:.3f}", flush=True)
        result = {"learning_rate": lr, "heldout_mlm_loss": heldout, "records": rows}
        atomic_write_text(out / "label_budget_along.json", json.dumps(result, indent=1) + "\n")
    save_along_figure(rows, heldout, out / "label_budget_along.png")


def save_along_figure(rows: list[dict], heldout: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
    if heldout:
        left.plot(*zip(*heldout), marker="o", markersize=3)
    left.set(xlabel="pretraining step", ylabel="held-out MLM loss", title="pretraining")
    for data in sorted({r["data"] for r in rows}):
        steps = sorted({r["step"] for r in rows if r["data"] == data})
        accs = [[r["test_accuracy"] for r in rows if r["data"] == data and r["step"] == s] for s in steps]
        means = [float(np.mean(v)) for v in accs]
        cis = [t_interval(v) for v in accs]
        right.errorbar(steps, means, yerr=[[m - c[0] for m, c in zip(means, cis)], [c[1] - m for m, c in zip(means, cis)]],
                       marker="o", markersize=4, capsize=3, label=f"{data}, N = {rows[0]['n_labels']:,}")
    right.set(xlabel="pretraining step of the starting weights (0: random init)", ylabel="test accuracy",
              title="fine-tuned from that step")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
