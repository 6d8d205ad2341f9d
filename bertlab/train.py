"""One training loop, for pretraining and fine-tuning alike.

What it does, in the order a step happens:

* batches: a seeded permutation of the data set per epoch, cut into batches (optionally grouped
  by length so a batch pads little); under `torchrun` each rank takes its slice of every global
  batch, so N processes see exactly what one process with an N-times larger batch would see;
* forward under autocast (bf16 where the GPU supports it, fp16 with a gradient scaler otherwise,
  nothing on a CPU unless asked), loss divided by the accumulation count, backward;
* every `grad_accum_steps` micro-batches: clip the gradient norm, AdamW step (no weight decay on
  biases and LayerNorm weights), linear warm-up then linear decay of the learning rate;
* logging to `metrics.jsonl` (and TensorBoard if asked; metrics leave the device only at log
  steps), evaluation every N steps with early stopping and the best model kept, checkpoints.

A checkpoint holds the model, the optimizer, scheduler, scaler and RNG states and the position in
the data: a resumed run continues exactly where the saved one was (on a CPU, to the same weights).
Checkpoints are written under a temporary name and renamed: a kill never damages the last one.
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

from .common import BertlabError, atomic_write_text, eval_mode, temporary_name

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
    # Intervals in optimizer steps. The Trainer resolves them once the run's length is known:
    log_every: int | None = 10  # None: max(1, min(10, the evaluation interval, total steps // 20))
    eval_every: int | None = None  # None: every total // evals_per_run steps, or only at the end
    evals_per_run: int | None = None  # e.g. 10: ten evaluations, evenly spaced, whatever the run's length
    save_every: int | None = None  # None: at the evaluation interval if save_with_eval, else no checkpoints
    save_with_eval: bool = False
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
            raise BertlabError(f"amp must be auto, bf16, fp16 or no, not {self.amp!r}")
        for name in ("batch_size", "grad_accum_steps"):
            if getattr(self, name) < 1:
                raise BertlabError(f"{name} must be at least 1")
        for name in ("max_steps", "log_every", "eval_every", "evals_per_run", "save_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BertlabError(f"{name} must be at least 1 (or None)")


@dataclass
class TrainResult:
    step: int
    epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False


# --- small pieces ----------------------------------------------------------------------------


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
    return lambda step: (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))


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
        raise BertlabError(f"{MAX_STEPS_ENV}={value!r}: must be a positive whole number")
    return int(value)


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


def resume_line(output_dir: str | Path) -> str:
    """One line saying where a resumed run continues from."""
    if (ckpt := latest_checkpoint(output_dir)) is None:
        return f"--resume: no complete checkpoint in {Path(output_dir) / CHECKPOINTS}: starting from step 0"
    return f"--resume: continuing from step {int(ckpt.name.split('-')[-1]):,} ({CHECKPOINTS}/{ckpt.name})"


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
    """Trains `model` on `dataset` batched by `collate`.

    The model's forward returns an object with `.loss` and, optionally, `.losses`, a dict of named
    parts of it that are logged too ("mlm_loss" -> "train_mlm_loss"); a model's `tied_weights_keys`
    name the weights a checkpoint does not store. `eval_fn(model) -> dict` is called every
    `eval_every` steps and at the end; `metrics_fn(batch, output) -> dict` adds training metrics
    (tensors, best: they are read on the CPU only at log steps); `callbacks` are called as
    `cb(trainer, step, record)` after every optimizer step.
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
        self.device = torch.device(config.device if config.device else
                                   ("cuda", local_rank) if torch.cuda.is_available() else "cpu")
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
        # The intervals of this run (the config stays as given).
        self.eval_every = config.eval_every or (
            max(1, self.total_steps // config.evals_per_run) if config.evals_per_run else None)
        self.save_every = config.save_every or (self.eval_every if config.save_with_eval else None)
        self.log_every = config.log_every or max(1, min(10, self.eval_every or 10, self.total_steps // 20 or 1))

        self.optimizer = adamw(parameter_groups(self.model, config.weight_decay), lr=config.learning_rate,
                               betas=config.adam_betas, eps=config.adam_eps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_schedule(warmup, self.total_steps))
        self.amp_dtype, use_scaler = autocast_settings(self.device, config.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64  # for logged metrics

        self.train_model: nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if config.compile:
            self.train_model = torch.compile(self.train_model)

        self.step, self.epoch = 0, 0
        self.micro_in_epoch = 0  # micro-batches of the current epoch already consumed
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.history: list[dict[str, Any]] = []

    # --- checkpoints ---

    def _state(self) -> dict[str, Any]:
        state = {
            "step": self.step, "epoch": self.epoch, "micro_in_epoch": self.micro_in_epoch,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
            "best_metric": self.best_metric, "best_step": self.best_step, "bad_evals": self.bad_evals,
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
            final = root / name
            tmp = temporary_name(final)
            self.model.save_pretrained(tmp)
            torch.save(self._state(), tmp / STATE_FILE)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)  # atomic: a checkpoint folder is complete or absent
            atomic_write_text(root / "latest", name + "\n")
            old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)
            for p in old[: max(0, len(old) - (self.config.keep_checkpoints - 1))]:
                shutil.rmtree(p, ignore_errors=True)
        self._barrier()
        return self.output_dir / CHECKPOINTS / f"step-{self.step:08d}"

    def load_checkpoint(self, folder: Path) -> None:
        from .checkpoint import read_state_dict

        weights, _ = read_state_dict(folder)
        missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected or set(missing) - set(getattr(self.model, "tied_weights_keys", ())):
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
        atomic_write_text(log, "".join(x + "\n" for x in kept))

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    # --- evaluation ---

    def evaluate(self) -> dict[str, float]:
        if self.eval_fn is None:
            return {}
        with eval_mode(self.model), torch.no_grad(), self._autocast():
            return self.eval_fn(self.model)

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

    def _means(self, window: dict[str, Any], steps: int) -> dict[str, float]:
        """A log window's sums -> "train_*" means, read from the device here, once per log step
        (and averaged over the processes under DDP)."""
        names = sorted(window)
        sums = torch.stack([torch.as_tensor(window[k], dtype=self.sum_dtype, device=self.device) for k in names])
        if self.world > 1:
            dist.all_reduce(sums)
        means = (sums / (steps * self.world)).tolist()
        return {(k if k.startswith("train_") else f"train_{k}"): v for k, v in zip(names, means)}

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
            random.seed(cfg.seed)
            torch.manual_seed(cfg.seed)
            if self.is_main:
                (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
        self._tb = None
        if cfg.tensorboard and self.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise BertlabError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
            self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))

        from tqdm.auto import tqdm

        show = cfg.progress  # None: tqdm decides (a bar on a terminal or notebook, none in logs)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=(not show) if show is not None else None,
                   desc="train", dynamic_ncols=True, leave=show is True)
        self.train_model.train()
        micro = self._micro_batches()
        stopped_early = False
        n = cfg.grad_accum_steps
        window: dict[str, Any] = {}  # sums over the log window; tensors stay on the device until a log step
        window_steps, window_tokens, window_start = 0, 0, time.perf_counter()

        while self.step < self.total_steps and not stopped_early:
            self.optimizer.zero_grad(set_to_none=True)
            for i in range(n):
                cpu_batch = next(micro)
                window_tokens += int(cpu_batch["attention_mask"].sum()) if "attention_mask" in cpu_batch else 0
                batch = {k: v.to(self.device, non_blocking=True) for k, v in cpu_batch.items()}
                sync = nullcontext() if (i == n - 1 or self.world == 1) else self.train_model.no_sync()
                with sync:
                    with self._autocast():
                        out = self.train_model(**batch)
                    self.scaler.scale(out.loss / n).backward()
                values = {"loss": out.loss, **(getattr(out, "losses", None) or {})}
                if self.metrics_fn is not None:
                    with torch.no_grad():
                        values.update(self.metrics_fn(batch, out))
                for k, v in values.items():
                    v = v.detach().to(self.sum_dtype) if torch.is_tensor(v) else v
                    window[k] = window.get(k, 0.0) + v / n

            self.scaler.unscale_(self.optimizer)
            grad_norm = None
            if cfg.max_grad_norm is not None:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()
            self.step += 1
            window_steps += 1
            bar.update(1)

            record: dict[str, Any] | None = None
            if self.step % self.log_every == 0 or self.step == self.total_steps:
                record = {"step": self.step, "epoch": self.epoch, "lr": lr, **self._means(window, window_steps)}
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                record["tokens_per_s"] = window_tokens * self.world / max(time.perf_counter() - window_start, 1e-9)
                window, window_steps, window_tokens, window_start = {}, 0, 0, time.perf_counter()
                bar.set_postfix(loss=f"{record['train_loss']:.3f}")
            if self.eval_every and (self.step % self.eval_every == 0 or self.step == self.total_steps):
                metrics = self.evaluate()
                record = record or {"step": self.step, "epoch": self.epoch, "lr": lr}
                record.update({f"eval_{k}": v for k, v in metrics.items()})
                stopped_early = self._after_eval(metrics)
            if record is not None:
                self._log(record)
            if self.save_every and self.step % self.save_every == 0:
                self.save_checkpoint()
            for cb in self.callbacks:
                cb(self, self.step, record)

        bar.close()
        if self.eval_fn is not None and not self.eval_every:
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
