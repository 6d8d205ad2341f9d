"""Throughput of bertlab against the reference implementation (transformers, SDPA attention).

Both models get the same configuration, the same weights and the same batches; before any timing
counts, their losses and gradients on one batch are checked equal. Timed runs alternate between
the two in one process (ours, theirs, ours, theirs, ...) so that drift of the machine's speed
cancels, and the median over rounds is reported. A training step is forward + backward + AdamW.

    python -m bertlab.bench --task pretrain --preset tiny --seq-len 128 --batch-size 32
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .config import BertConfig


def _reference_pair(task: str, config: BertConfig, seed: int = 0):
    """(bertlab model, transformers model) with identical weights, in training mode."""
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
    ours = ours_cls(config)
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
    ours.eval(), ref.eval()
    for m in (ours, ref):
        m.zero_grad(set_to_none=True)
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
        m.train()
    return diff


def _train_steps(model, optimizer, batches, device) -> float:
    """Seconds for len(batches) full training steps."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def bench_train_step(task: str = "pretrain", preset: str = "tiny", vocab_size: int = 30522, seq_len: int = 128,
                     batch_size: int = 32, steps: int = 5, rounds: int = 3, lengths: list[int] | None = None,
                     device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    config = BertConfig.from_preset(preset, vocab_size=vocab_size, max_position_embeddings=max(512, seq_len))
    ours, ref = _reference_pair(task, config, seed)
    dev = torch.device(device)
    batches = make_batches(task, config, batch_size, seq_len, steps + 1, seed, lengths)
    loss_diff = check_equal(ours, ref, batches[0])
    ours, ref = ours.to(dev), ref.to(dev)
    batches = [{k: v.to(dev) for k, v in b.items()} for b in batches]
    # The same optimizer for both: fused AdamW, as bertlab's Trainer and transformers' Trainer both default to.
    from .train import adamw

    opts = {name: adamw(m.parameters(), lr=1e-5) for name, m in (("bertlab", ours), ("transformers", ref))}
    models = {"bertlab": ours, "transformers": ref}
    for name in models:  # warm-up step, not timed
        _train_steps(models[name], opts[name], batches[:1], dev)
    times: dict[str, list[float]] = {"bertlab": [], "transformers": []}
    for _ in range(rounds):
        for name in ("bertlab", "transformers"):
            times[name].append(_train_steps(models[name], opts[name], batches[1:], dev))
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    result = {
        "task": task, "preset": preset, "vocab_size": vocab_size, "seq_len": seq_len, "batch_size": batch_size,
        "steps_per_round": steps, "rounds": rounds, "variable_length": bool(lengths),
        "loss_difference": loss_diff,
    }
    for name, ts in times.items():
        result[f"{name}_tokens_per_s"] = tokens / statistics.median(ts)
    result["ratio"] = result["bertlab_tokens_per_s"] / result["transformers_tokens_per_s"]
    return result


def environment(device: str = "cpu") -> dict[str, Any]:
    import transformers

    info = {
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bertlab bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=["pretrain", "finetune"], default="pretrain")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--vocab-size", type=int, default=30522)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--output", help="write the result as JSON here")
    args = p.parse_args(argv)
    result = bench_train_step(args.task, args.preset, args.vocab_size, args.seq_len, args.batch_size,
                              args.steps, args.rounds, device=args.device)
    result["environment"] = environment(args.device)
    print(f"{args.task} step, preset {args.preset}, vocabulary {args.vocab_size}, sequence {args.seq_len}, "
          f"batch {args.batch_size} on {args.device}:")
    print(f"  bertlab       {result['bertlab_tokens_per_s']:10,.0f} tokens/s")
    print(f"  transformers  {result['transformers_tokens_per_s']:10,.0f} tokens/s")
    print(f"  ratio         {result['ratio']:10.2f}x   (loss difference {result['loss_difference']:.1e})")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
