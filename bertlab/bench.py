"""Throughput of bertlab against the reference implementation (transformers, SDPA attention).

Both models get the same configuration, the same weights and the same batches; before any timing
counts, their losses and gradients on one batch are checked equal. Timed runs alternate between
the two in one process (ours, theirs, ours, theirs, ...) so that drift of the machine's speed
cancels, and the median over rounds is reported.

What is timed (`--mode`): `forward` (inference, no gradients), `backward` (forward + backward) or
`step` (forward + backward + fused AdamW: a full training step). Tokens/s counts real tokens only
(padding excluded), so a model that wastes work on padding scores lower. Batches are fixed-length
(`--lengths fixed`) or have realistic lengths drawn from a data set's token counts
(`--lengths rotten_tomatoes` or `sst2`), padded to each batch's longest row.

Memory: on a GPU the peak allocated by each model's timed steps; on a CPU the activations saved
for the backward pass (the training memory that grows with batch and sequence). On a GPU the model
FLOPs utilisation (MFU) of bertlab is reported against the device's dense bf16 peak.

    bertlab bench --task pretrain --preset tiny --seq-len 128 --batch-size 32
    bertlab bench --task finetune --lengths rotten_tomatoes --mode step
    bertlab bench --suite cpu --output results/bench/cpu.json     # the whole table
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .common import BertlabError, atomic_write_text, check_options, eval_mode, option
from .config import FAST_PATHS, PRESETS, BertConfig


def _reference_pair(task: str, config: BertConfig, seed: int = 0):
    """(bertlab model, with the speed paths of bertlab.fast on, and transformers model) with identical
    weights, in training mode."""
    import transformers

    import bertlab

    kinds = {
        "pretrain": (bertlab.BertForPreTraining, transformers.BertForPreTraining),
        "finetune": (bertlab.BertForSequenceClassification, transformers.BertForSequenceClassification),
    }
    ours_cls, ref_cls = kinds[task]
    d = config.to_dict()
    d.pop("bertlab_attn_implementation")
    torch.manual_seed(seed)
    ref = ref_cls._from_config(transformers.BertConfig(**d), attn_implementation="sdpa")
    ours = ours_cls(config.replace(**FAST_PATHS))
    ours.load_state_dict(ref.state_dict(), strict=False)
    ours.tie_weights()
    return ours.train(), ref.train()


def make_batches(task: str, config: BertConfig, batch_size: int, seq_len: int, n: int, seed: int = 0,
                 lengths: list[int] | None = None, masked_lm_prob: float = 0.15) -> list[dict[str, torch.Tensor]]:
    """Synthetic batches of random tokens; with `lengths`, rows are padded to the batch's longest."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        if lengths:
            idx = torch.randint(len(lengths), (batch_size,), generator=g)
            row_len = torch.tensor([min(seq_len, max(4, lengths[i])) for i in idx])
        else:
            row_len = torch.full((batch_size,), seq_len)
        T = int(row_len.max())
        ids = torch.randint(5, config.vocab_size, (batch_size, T), generator=g)
        mask = (torch.arange(T)[None, :] < row_len[:, None]).long()
        ids = ids * mask  # pad id 0
        ids[:, 0] = 2
        types = torch.zeros_like(ids)
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if task == "pretrain":
            chosen = (torch.rand(ids.shape, generator=g) < masked_lm_prob) & mask.bool()
            chosen[:, 0] = False
            batch["labels"] = torch.where(chosen, ids, torch.full_like(ids, -100))
            batch["next_sentence_label"] = torch.randint(0, 2, (batch_size,), generator=g)
        else:
            batch["labels"] = torch.randint(0, config.num_labels, (batch_size,), generator=g)
        out.append(batch)
    return out


def check_equal(ours, ref, batch: dict[str, torch.Tensor], atol: float = 1e-4) -> float:
    """Loss and gradients of the two models on one batch, dropout off. Returns the loss difference."""
    for m in (ours, ref):
        m.zero_grad(set_to_none=True)
    with eval_mode(ours), eval_mode(ref):
        a, b = ours(**batch).loss, ref(**batch).loss
        a.backward(), b.backward()
    diff = abs(a.item() - b.item())
    if diff > atol:
        raise AssertionError(f"losses differ: bertlab {float(a):.6f} vs transformers {float(b):.6f}")
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        g_ref = ref_params[name].grad
        if p.grad is None or g_ref is None:
            continue
        if not torch.allclose(p.grad, g_ref, atol=atol, rtol=1e-3):
            raise AssertionError(f"gradients of {name} differ by {(p.grad - g_ref).abs().max():.2e}")
    for m in (ours, ref):
        m.zero_grad(set_to_none=True)
    return diff


MODES = ("forward", "backward", "step")


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _run(model, optimizer, batches, device, mode: str = "step", amp: torch.dtype | None = None) -> float:
    """Seconds for len(batches) forward passes, forward+backward passes or training steps."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for batch in batches:
        if mode == "forward":
            with torch.no_grad(), _autocast(device, amp):
                model(**batch)
            continue
        with _autocast(device, amp):
            loss = model(**batch).loss
        loss.backward()
        if mode == "step":
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def _train_steps(model, optimizer, batches, device) -> float:
    """Seconds for len(batches) full training steps."""
    return _run(model, optimizer, batches, device, "step")


def saved_activation_bytes(model, batch, amp: torch.dtype | None = None) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one forward (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t):
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            pass
        return t

    device = next(model.parameters()).device
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _autocast(device, amp):
        loss = model(**batch).loss
    del loss
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


# Dense bf16 peak of GPUs we know, in FLOP/s (vendor data sheets, without sparsity).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "T4": 65e12}


def peak_flops(device_name: str) -> float | None:
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def training_flops_per_token(config: BertConfig, seq_len: float, task: str, mask_fraction: float = 0.15) -> float:
    """Model FLOPs of one training step per token: 6 x (matrix parameters touched) + attention.

    Per token and layer the weight matrices hold 4H^2 (Q, K, V, output) + 2HF (feed-forward, F = 4H
    in BERT) parameters; forward is 2 FLOPs per weight and backward twice that, hence 6. Attention
    scores and the weighted sum add 2 x 2 x T x H forward per token and layer, x3 with backward. The
    MLM head (transform H^2 + decoder H x V) runs on the masked share of tokens only.
    """
    H, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    flops = 6 * L * (4 * H * H + 2 * H * F) + 12 * L * seq_len * H
    if task == "pretrain":
        flops += 6 * mask_fraction * (H * H + H * config.vocab_size)
    return flops


@functools.lru_cache(maxsize=4)
def real_lengths(source: str = "rotten_tomatoes", limit: int = 4000) -> tuple[int, ...]:
    """Token counts ([CLS] and [SEP] included) of a data set's training texts, with the MiniLM vocabulary."""
    from .data import load_classification
    from .tokenizer import WordPieceTokenizer

    split = load_classification(source).splits["train"]
    tok = WordPieceTokenizer.from_pretrained("minilm-l6")
    texts = split.texts[:limit]
    return tuple(len(ids) + 2 for ids in tok.encode_batch_ids(texts))


def bench(task: str = "pretrain", preset: str = "tiny", vocab_size: int = 30522, seq_len: int = 128,
          batch_size: int = 32, steps: int = 5, rounds: int = 3, lengths: str | list[int] | None = None,
          mode: str = "step", device: str = "cpu", amp: str = "no", seed: int = 0) -> dict[str, Any]:
    """One benchmark case: bertlab vs transformers on identical weights and batches."""
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    source = lengths if isinstance(lengths, str) and lengths != "fixed" else None
    row_lengths = list(real_lengths(source)) if source else (lengths if isinstance(lengths, list) else None)
    amp_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    config = BertConfig.from_preset(preset, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len))
    ours, ref = _reference_pair(task, config, seed)
    dev = torch.device(device)
    batches = make_batches(task, config, batch_size, seq_len, steps + 1, seed, row_lengths)
    loss_diff = check_equal(ours, ref, batches[0])
    ours, ref = ours.to(dev), ref.to(dev)
    batches = [{k: v.to(dev) for k, v in b.items()} for b in batches]
    # The same optimizer for both: fused AdamW, as bertlab's Trainer and transformers' Trainer both default to.
    from .train import adamw

    models = {"bertlab": ours, "transformers": ref}
    opts = {name: adamw(m.parameters(), lr=1e-5) for name, m in models.items()}
    for name, m in models.items():  # warm-up, not timed
        m.train(mode != "forward")
        _run(m, opts[name], batches[:1], dev, mode, amp_dtype)
    times: dict[str, list[float]] = {"bertlab": [], "transformers": []}
    peak: dict[str, int] = {}
    for _ in range(rounds):
        for name, m in models.items():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times[name].append(_run(m, opts[name], batches[1:], dev, mode, amp_dtype))
            if dev.type == "cuda":
                peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated())
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    padded = sum(b["attention_mask"].numel() for b in batches[1:])
    result = {
        "task": task, "mode": mode, "preset": preset, "vocab_size": vocab_size, "seq_len": seq_len,
        "batch_size": batch_size, "steps_per_round": steps, "rounds": rounds, "amp": amp,
        "lengths": source or ("given" if row_lengths else "fixed"), "variable_length": bool(row_lengths),
        "padding_share": round(1 - tokens / padded, 4), "loss_difference": loss_diff,
    }
    for name, ts in times.items():
        result[f"{name}_tokens_per_s"] = tokens / statistics.median(ts)
        result[f"{name}_seconds"] = [round(t, 4) for t in ts]
    result["ratio"] = result["bertlab_tokens_per_s"] / result["transformers_tokens_per_s"]
    if dev.type == "cuda":
        for name in models:
            result[f"{name}_peak_memory_bytes"] = peak[name]
    elif mode != "forward":
        for name, m in models.items():
            result[f"{name}_saved_activation_bytes"] = saved_activation_bytes(m, batches[1], amp_dtype)
            m.zero_grad(set_to_none=True)
    if dev.type == "cuda" and mode == "step":
        name = torch.cuda.get_device_name(dev)
        flops_token = training_flops_per_token(config, padded / len(batches[1:]) / batch_size, task)
        result["device_peak_bf16_flops"] = peak_flops(name)
        if peak_flops(name):
            for who in models:
                result[f"{who}_mfu"] = result[f"{who}_tokens_per_s"] * flops_token / peak_flops(name)
    return result


def bench_train_step(task: str = "pretrain", preset: str = "tiny", vocab_size: int = 30522, seq_len: int = 128,
                     batch_size: int = 32, steps: int = 5, rounds: int = 3, lengths: list[int] | None = None,
                     device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Full training steps (forward + backward + AdamW): `bench(..., mode="step")`."""
    return bench(task, preset, vocab_size, seq_len, batch_size, steps, rounds, lengths, "step", device, "no", seed)


# The cases `--suite` runs: (task, preset, seq_len, batch_size, lengths, mode).
SUITES = {
    "smoke": [("finetune", "tiny", 32, 4, "rotten_tomatoes", "step"), ("pretrain", "tiny", 32, 4, "fixed", "step")],
    "cpu": [
        ("pretrain", "tiny", 128, 32, "fixed", "step"),
        ("finetune", "tiny", 128, 32, "fixed", "step"),
        ("finetune", "tiny", 128, 32, "rotten_tomatoes", "step"),
        ("finetune", "tiny", 128, 32, "rotten_tomatoes", "forward"),
        ("finetune", "tiny", 128, 32, "rotten_tomatoes", "backward"),
        ("finetune", "tiny", 512, 8, "fixed", "step"),
        ("pretrain", "tiny", 512, 8, "fixed", "step"),
        ("finetune", "base", 128, 8, "rotten_tomatoes", "step"),
        ("finetune", "base", 128, 8, "fixed", "step"),
    ],
    "gpu": [
        (task, "base", seq, bs, lengths, "step")
        for task in ("finetune", "pretrain") for seq, bs in ((128, 64), (512, 16)) for lengths in ("fixed", "sst2")
    ] + [("finetune", "tiny", 128, 64, "sst2", "step"), ("finetune", "base", 128, 64, "sst2", "forward")],
}


def run_suite(name: str, device: str, steps: int, rounds: int, amp: str, log=print) -> list[dict[str, Any]]:
    results = []
    for task, preset, seq_len, batch_size, lengths, mode in SUITES[name]:
        if lengths == "sst2":
            try:
                real_lengths("sst2")
            except (ValueError, OSError) as err:  # no data directory: fall back to the embedded data
                log(f"sst2 lengths unavailable ({str(err).splitlines()[0]}); using rotten_tomatoes")
                lengths = "rotten_tomatoes"
        vocab = 1000 if name == "smoke" else 30522  # the smoke run (CI) only checks that everything runs
        r = bench(task, preset, vocab, seq_len, batch_size, steps, rounds, lengths, mode, device,
                  amp if device.startswith("cuda") else "no")
        log(summary_line(r))
        results.append(r)
    return results


def summary_line(r: dict[str, Any]) -> str:
    mem = ""
    if "bertlab_peak_memory_bytes" in r:
        mem = (f"  peak memory {r['bertlab_peak_memory_bytes'] / 2**20:,.0f} vs "
               f"{r['transformers_peak_memory_bytes'] / 2**20:,.0f} MiB")
    elif "bertlab_saved_activation_bytes" in r:
        mem = (f"  activations {r['bertlab_saved_activation_bytes'] / 2**20:,.0f} vs "
               f"{r['transformers_saved_activation_bytes'] / 2**20:,.0f} MiB")
    mfu = f"  MFU {r['bertlab_mfu']:.1%}" if "bertlab_mfu" in r else ""
    return (f"{r['task']:8s} {r['mode']:8s} {r['preset']:5s} seq {r['seq_len']:3d} batch {r['batch_size']:3d} "
            f"{r['lengths']:15s} bertlab {r['bertlab_tokens_per_s']:9,.0f} tok/s  transformers "
            f"{r['transformers_tokens_per_s']:9,.0f} tok/s  ratio {r['ratio']:5.2f}x{mem}{mfu}")


def environment(device: str = "cpu") -> dict[str, Any]:
    import os

    import transformers

    import bertlab

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "date": _dt.date.today().isoformat(),
        "bertlab": bertlab.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name()
    return info


def replaceable_output(out: Path) -> bool:
    """--output may be written: it does not exist, or it is a JSON result this command wrote earlier."""
    if not out.exists():
        return True
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    # results written before the marker existed: an environment and a suite or a single run's ratio
    return data.get("bertlab_command") == "bench" or ("environment" in data and ("suite" in data or "ratio" in data))


class BenchError(BertlabError):
    """Arguments that cannot make a benchmark."""


@dataclass(kw_only=True)
class BenchArgs:
    """What `bertlab bench` takes; its flags are made from these fields."""

    task: str = option("pretrain", "BertForPreTraining (MLM + NSP) or BertForSequenceClassification",
                       choices=("pretrain", "finetune"))
    mode: str = option("step", "forward (inference), backward (forward + backward) or step (+ AdamW)", choices=MODES)
    preset: str = option("tiny", "model size", choices=tuple(PRESETS))
    vocab_size: int = option(30522, "vocabulary size of both models", minimum=1)
    seq_len: int = option(128, "sequence length (the longest row with --lengths)", minimum=8)
    batch_size: int = option(32, "rows per batch", minimum=1)
    lengths: str = option("fixed", "fixed, or the data set whose token counts set each row's length "
                          "(rotten_tomatoes, sst2)")
    amp: str | None = option(None, "autocast dtype (default: bf16 on a GPU, none on a CPU)",
                             choices=("no", "bf16", "fp16"))
    steps: int = option(5, "timed steps per round", minimum=1)
    rounds: int = option(3, "rounds of timed steps; the median is reported", minimum=1)
    suite: str | None = option(None, "run a whole table of cases instead of one", choices=tuple(sorted(SUITES)))
    device: str | None = option(None, "cpu, cuda, cuda:1, ... (default: cuda when there is one, else cpu)")
    output: str | None = option(None, "write the result(s) as JSON here")


def check_device(device: str) -> None:
    """A BenchError naming --device unless torch knows the device and this machine has it."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BenchError(f"--device {device}: not a device torch knows (cpu, cuda, cuda:1, mps, ...)") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise BenchError(f"--device {device}: no such CUDA GPU here ({torch.cuda.device_count()} found)")


def run_bench(args: BenchArgs, log=print) -> dict[str, Any]:
    """One case or a suite; returns the result (also written to --output)."""
    check_options(args, BenchError)
    if args.output and not replaceable_output(Path(args.output)):
        raise BenchError(f"--output {args.output}: exists and is not a result of bertlab bench; "
                         "nothing was changed, choose another file")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    amp = args.amp or ("bf16" if device.startswith("cuda") else "no")
    if args.suite:
        log(f"suite {args.suite} on {device}: {len(SUITES[args.suite])} cases")
        results = run_suite(args.suite, device, args.steps, args.rounds, amp, log=log)
        data: dict[str, Any] = {"suite": args.suite, "results": results, "environment": environment(device)}
    else:
        data = bench(args.task, args.preset, args.vocab_size, args.seq_len, args.batch_size, args.steps,
                     args.rounds, args.lengths, args.mode, device, amp)
        data["environment"] = environment(device)
    if args.output:
        data = {"bertlab_command": "bench", **data}  # what replaceable_output looks for next time
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(data, indent=2) + "\n")
    return data


def report_lines(data: dict[str, Any], args: BenchArgs) -> list[str]:
    """What `bertlab bench` prints at the end: the two speeds and their ratio (a suite logs as it runs)."""
    if "suite" in data:
        return [f"results of suite {data['suite']} in {args.output}"] if args.output else []
    return [f"{args.task} {args.mode}, preset {args.preset}, vocabulary {args.vocab_size}, sequence "
            f"{args.seq_len}, batch {args.batch_size}, lengths {data['lengths']} on {data['environment']['device']}:",
            f"  bertlab       {data['bertlab_tokens_per_s']:10,.0f} tokens/s",
            f"  transformers  {data['transformers_tokens_per_s']:10,.0f} tokens/s",
            f"  ratio         {data['ratio']:10.2f}x   (loss difference {data['loss_difference']:.1e})",
            summary_line(data)]
