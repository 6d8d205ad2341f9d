"""One training loop, for pretraining and fine-tuning alike.

What it does, in the order a step happens:

* batches: a seeded permutation of the data set per epoch, cut into batches (optionally grouped
  by length so a batch pads little); under `torchrun` each rank takes its slice of every global
  batch, so N processes see exactly what one process with an N-times larger batch would see;
* forward under autocast (bf16 where the GPU supports it, fp16 with a gradient scaler otherwise,
  nothing on a CPU unless asked), loss divided by the accumulation count, backward;
* every `grad_accum_steps` micro-batches: clip the gradient norm, AdamW step (no weight decay on
  biases and LayerNorm weights), linear warm-up then linear decay of the learning rate;
* logging to `metrics.jsonl` (and TensorBoard if asked), a progress bar, evaluation every N
  steps with early stopping and the best model kept, checkpoints every N steps.

A checkpoint holds the model (safetensors), the optimizer, scheduler and scaler states, the
RNG state and the position in the data: a resumed run continues exactly where the saved one was,
and on a CPU ends with the same weights as a run that was never interrupted. Checkpoints are
written under a temporary name and renamed, so a kill during a save never damages the last one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger("bertlab")

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainConfig:
    output_dir: str
    max_steps: int | None = None  # optimizer steps; if None, `epochs` decides
    epochs: float = 1.0
    batch_size: int = 32  # examples per micro-batch on each process
    grad_accum_steps: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-6
    warmup_steps: int | None = None  # if None: warmup_ratio x total steps
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    seed: int = 0
    amp: str = "auto"  # auto | bf16 | fp16 | no
    compile: bool = False
    log_every: int = 10
    eval_every: int | None = None
    save_every: int | None = None
    keep_checkpoints: int = 2
    metric_for_best: str | None = None  # e.g. "accuracy" or "loss", from the eval function
    greater_is_better: bool = True
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    group_by_length: bool = False
    drop_last: bool = False
    num_workers: int = 0
    progress: bool | None = None  # None: a bar on a terminal or notebook, none in logs/CI
    tensorboard: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "bf16", "fp16", "no"):
            raise ValueError(f"amp must be auto, bf16, fp16 or no, not {self.amp!r}")
        for name in ("batch_size", "grad_accum_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")


@dataclass
class TrainResult:
    step: int
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False


# --- small pieces ----------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: not on biases, not on LayerNorm weights (as in BERT)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name or p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(params, **kwargs) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one pass over all parameters) where this torch has it."""
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # an old torch, or a device without the kernel
        return torch.optim.AdamW(params, **kwargs)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: 0 -> 1 over `warmup` steps, then 1 -> 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: Sequence[int] | None = None, drop_last: bool = False
) -> list[list[int]]:
    """The batches of one epoch: a permutation seeded by (seed, epoch), cut every `batch_size`.

    With `lengths`, examples of similar length share a batch (less padding): the permutation is
    cut into pools of 50 batches, each pool is sorted by length, and the batches are shuffled.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    if lengths is not None:
        pool = 50 * batch_size
        order = [i for s in range(0, n, pool) for i in sorted(order[s : s + pool], key=lambda i: -lengths[i])]
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if lengths is not None:
        perm = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[i] for i in perm]
    return batches


def autocast_settings(device: torch.device, amp: str) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a gradient scaler).

    `amp="auto"`: nothing on a CPU. On a GPU, bf16 where the GPU computes in bf16 natively, that is
    from compute capability 8.0 on (A100, RTX 30xx, H100, ...); fp16 with a gradient scaler below
    that (V100 7.0, T4 7.5). `torch.cuda.is_bf16_supported()` is not the test: it answers True on a
    T4 too, whose bf16 is emulated and slow.
    """
    if amp == "no" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "auto":
        major, _minor = torch.cuda.get_device_capability(device)
        amp = "bf16" if major >= 8 else "fp16"
    return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, device.type == "cuda")


MAX_STEPS_ENV = "BERTLAB_MAX_STEPS"


def step_cap(environ: dict[str, str] | None = None) -> int | None:
    """N when BERTLAB_MAX_STEPS=N is set: every training run then stops after at most N optimizer
    steps. It is a switch for smoke tests (CI runs the book's full-size recipes on a CPU with it)."""
    value = (os.environ if environ is None else environ).get(MAX_STEPS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_STEPS_ENV}={value!r}: must be a positive whole number")
    return int(value)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    root = Path(output_dir) / CHECKPOINTS
    pointer = root / "latest"
    if pointer.is_file():
        candidate = root / pointer.read_text(encoding="utf-8").strip()
        if (candidate / STATE_FILE).is_file():
            return candidate
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file())
    return done[-1] if done else None


# --- distributed -----------------------------------------------------------------------------


def distributed_context() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1:
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


# --- the loop --------------------------------------------------------------------------------


class Trainer:
    """Trains `model` (whose forward returns an object with `.loss`) on `dataset` batched by `collate`.

    `eval_fn(model) -> dict` is called every `eval_every` steps and at the end; `metrics_fn(batch,
    output) -> dict` adds per-step training metrics; `callbacks` are called as `cb(trainer, step,
    record)` after every optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        collate: Callable[[list[Any]], dict[str, torch.Tensor]],
        config: TrainConfig,
        eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        metrics_fn: Callable[[dict, Any], dict[str, float]] | None = None,
        lengths: Sequence[int] | None = None,
        callbacks: Iterable[Callable] = (),
        save_extra: Callable[[Path], None] | None = None,
    ):
        self.config = config
        self.rank, self.world, local_rank = distributed_context()
        if config.device:
            self.device = torch.device(config.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        self.model = model.to(self.device)  # the plain model: saved, evaluated
        self.dataset = dataset
        self.collate = collate
        self.eval_fn = eval_fn
        self.metrics_fn = metrics_fn
        self.lengths = lengths if config.group_by_length else None
        self.callbacks = list(callbacks)
        self.save_extra = save_extra
        self.output_dir = Path(config.output_dir)
        self.is_main = self.rank == 0

        self.global_batch = config.batch_size * self.world
        self.micro_per_epoch = len(
            epoch_batches(len(dataset), self.global_batch, config.seed, 0, None, config.drop_last or self.world > 1)
        )
        if self.micro_per_epoch == 0:
            raise ValueError(
                f"the data set has {len(dataset)} examples, fewer than one batch of {self.global_batch}"
            )
        steps_per_epoch = max(1, self.micro_per_epoch // config.grad_accum_steps)
        self.total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
        cap = step_cap()
        if cap is not None and cap < self.total_steps:
            logger.warning("%s=%d: this run stops after %d of its %d steps", MAX_STEPS_ENV, cap, cap, self.total_steps)
            self.total_steps = cap
        warmup = config.warmup_steps if config.warmup_steps is not None else int(config.warmup_ratio * self.total_steps)

        self.optimizer = adamw(parameter_groups(self.model, config.weight_decay), lr=config.learning_rate,
                               betas=config.adam_betas, eps=config.adam_eps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_schedule(warmup, self.total_steps))
        self.amp_dtype, use_scaler = autocast_settings(self.device, config.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)

        self.train_model: nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

        self.step = 0
        self.epoch = 0
        self.micro_in_epoch = 0  # micro-batches of the current epoch already consumed
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.history: list[dict[str, Any]] = []

    # --- checkpoints ---

    def _state(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "micro_in_epoch": self.micro_in_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "config": {k: v for k, v in asdict(self.config).items() if not isinstance(v, tuple)},
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def save_checkpoint(self) -> Path | None:
        if self.is_main:
            root = self.output_dir / CHECKPOINTS
            root.mkdir(parents=True, exist_ok=True)
            name = f"step-{self.step:08d}"
            tmp = root / f".{name}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save_pretrained(tmp)
            torch.save(self._state(), tmp / STATE_FILE)
            final = root / name
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)  # atomic: a checkpoint folder is complete or absent
            _atomic_write_text(root / "latest", name + "\n")
            old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)
            for p in old[: max(0, len(old) - (self.config.keep_checkpoints - 1))]:
                shutil.rmtree(p, ignore_errors=True)
        self._barrier()
        return self.output_dir / CHECKPOINTS / f"step-{self.step:08d}"

    def load_checkpoint(self, folder: Path) -> None:
        from .checkpoint import read_state_dict

        weights, _ = read_state_dict(folder)
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) - {"cls.predictions.decoder.weight"}:
            raise ValueError(f"{folder}: checkpoint does not fit this model (missing {missing}, unexpected {unexpected})")
        self.model.tie_weights()
        # Our own file (written by save_checkpoint); weights_only=True all the same.
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(_as_python_rng(state["python_rng"]))
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.epoch, self.micro_in_epoch = state["step"], state["epoch"], state["micro_in_epoch"]
        self.best_metric, self.best_step, self.bad_evals = state["best_metric"], state["best_step"], state["bad_evals"]

    # --- logging ---

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if not self.is_main:
            return
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self._tb.add_scalar(k, v, record["step"])

    def _truncate_log(self) -> None:
        """After a resume, drop log lines written past the checkpoint by the interrupted run."""
        log = self.output_dir / "metrics.jsonl"
        if not (self.is_main and log.is_file()):
            return
        kept = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by the kill
                continue
            if record.get("step", 0) <= self.step:
                kept.append(line)
                self.history.append(record)
        _atomic_write_text(log, "".join(x + "\n" for x in kept))

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    # --- evaluation ---

    def evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = self.eval_fn(self.model)
        self.model.train(was_training)
        return metrics

    def _after_eval(self, metrics: dict[str, float]) -> bool:
        """Track the best model; return True when early stopping says stop."""
        key = self.config.metric_for_best
        if not key or key not in metrics:
            return False
        value = metrics[key]
        better = self.best_metric is None or (
            value > self.best_metric if self.config.greater_is_better else value < self.best_metric
        )
        if better:
            self.best_metric, self.best_step, self.bad_evals = value, self.step, 0
            if self.is_main:
                best = self.output_dir / "best"
                self.model.save_pretrained(best)
                if self.save_extra:
                    self.save_extra(best)
            self._barrier()
            return False
        self.bad_evals += 1
        patience = self.config.early_stopping_patience
        return patience is not None and self.bad_evals >= patience

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --- the loop ---

    def _micro_batches(self):
        """Yield (epoch, micro index, batch) from the current position on, forever."""
        drop = self.config.drop_last or self.world > 1
        while True:
            batches = epoch_batches(len(self.dataset), self.global_batch, self.config.seed, self.epoch,
                                    self.lengths, drop)
            if hasattr(self.collate, "set_epoch"):
                self.collate.set_epoch(self.epoch)
            mine = [b[self.rank :: self.world] for b in batches[self.micro_in_epoch :]]
            if self.config.num_workers > 0:
                loader = torch.utils.data.DataLoader(
                    self.dataset, batch_sampler=mine, collate_fn=self.collate, num_workers=self.config.num_workers,
                    generator=torch.Generator().manual_seed(self.config.seed),
                )
                source = iter(loader)
            else:
                source = (self.collate([self.dataset[i] for i in idx]) for idx in mine)
            for batch in source:
                self.micro_in_epoch += 1  # counted before use: a checkpoint after this step resumes past it
                yield batch
            self.epoch += 1
            self.micro_in_epoch = 0

    def train(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self._barrier()
        if resume and (ckpt := latest_checkpoint(self.output_dir)) is not None:
            self.load_checkpoint(ckpt)
            self._truncate_log()
        else:
            seed_everything(cfg.seed)
            if self.is_main:
                (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
        self._tb = None
        if cfg.tensorboard and self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
            self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))

        show = cfg.progress if cfg.progress is not None else None
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, disable=(not show) if show is not None else None,
                   desc="train", dynamic_ncols=True, leave=show is True)
        self.train_model.train()
        micro = self._micro_batches()
        stopped_early = False
        window: dict[str, float] = {}
        window_count, window_tokens, window_start = 0, 0, time.perf_counter()

        while self.step < self.total_steps and not stopped_early:
            self.optimizer.zero_grad(set_to_none=True)
            step_metrics: dict[str, float] = {}
            for i in range(cfg.grad_accum_steps):
                batch = {k: v.to(self.device, non_blocking=True) for k, v in next(micro).items()}
                last = i == cfg.grad_accum_steps - 1
                sync = nullcontext() if (last or self.world == 1) else self.train_model.no_sync()
                with sync:
                    with self._autocast():
                        out = self.train_model(**batch)
                    loss = out.loss / cfg.grad_accum_steps
                    self.scaler.scale(loss).backward()
                window_tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
                step_metrics["loss"] = step_metrics.get("loss", 0.0) + float(loss.detach())
                for name in ("mlm_loss", "nsp_loss"):
                    if getattr(out, name, None) is not None:
                        step_metrics[name] = step_metrics.get(name, 0.0) + float(getattr(out, name).detach()) / cfg.grad_accum_steps
                if self.metrics_fn is not None:
                    with torch.no_grad():
                        for k, v in self.metrics_fn(batch, out).items():
                            step_metrics[k] = step_metrics.get(k, 0.0) + float(v) / cfg.grad_accum_steps

            self.scaler.unscale_(self.optimizer)
            grad_norm = None
            if cfg.max_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            self.step += 1
            bar.update(1)

            if self.world > 1:  # log the mean over processes
                names = sorted(step_metrics)
                t = torch.tensor([step_metrics[n] for n in names], dtype=torch.float64, device=self.device)
                dist.all_reduce(t)
                step_metrics = dict(zip(names, (t / self.world).tolist()))
            for k, v in step_metrics.items():
                window[k] = window.get(k, 0.0) + v
            window_count += 1

            record: dict[str, Any] | None = None
            if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                elapsed = time.perf_counter() - window_start
                record = {"step": self.step, "epoch": self.epoch, "lr": lr}
                record.update({f"train_{k}" if not k.startswith("train_") else k: v / window_count for k, v in window.items()})
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm
                record["tokens_per_s"] = window_tokens * self.world / max(elapsed, 1e-9)
                window, window_count, window_tokens, window_start = {}, 0, 0, time.perf_counter()
                bar.set_postfix(loss=f"{record['train_loss']:.3f}")
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == self.total_steps):
                metrics = self.evaluate()
                record = record or {"step": self.step, "epoch": self.epoch, "lr": lr}
                record.update({f"eval_{k}": v for k, v in metrics.items()})
                stopped_early = self._after_eval(metrics)
            if record is not None:
                self._log(record)
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save_checkpoint()
            for cb in self.callbacks:
                cb(self, self.step, record)

        bar.close()
        if self.eval_fn is not None and not cfg.eval_every:
            metrics = self.evaluate()
            self._log({"step": self.step, "epoch": self.epoch, **{f"eval_{k}": v for k, v in metrics.items()}})
            self._after_eval(metrics)
        if self._tb is not None:
            self._tb.close()
        return TrainResult(self.step, self.epoch, self.history, self.best_metric, self.best_step, stopped_early)


def _as_python_rng(state: Any) -> tuple:
    """`random.getstate()` comes back from torch.load with lists where tuples were."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
