"""A small, complete training run used by the resume and torchrun tests (run as a subprocess).

python tests/train_script.py OUT --steps 12 --save-every 4 [--resume] [--batch-size 8] [--slow S]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bertlab import BertConfig, BertForSequenceClassification  # noqa: E402
from bertlab.train import TrainConfig, Trainer  # noqa: E402


class Toy(torch.utils.data.Dataset):
    """Sequences of random tokens whose label is whether token 7 appears: learnable, seeded."""

    def __init__(self, n=96, seed=123):
        g = torch.Generator().manual_seed(seed)
        self.lengths = torch.randint(6, 20, (n,), generator=g).tolist()
        self.ids = [torch.randint(5, 60, (t,), generator=g) for t in self.lengths]
        self.labels = [int((x == 7).any()) for x in self.ids]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "label": self.labels[i]}


def collate(examples):
    T = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, e in enumerate(examples):
        ids[r, : len(e["input_ids"])] = e["input_ids"]
        mask[r, : len(e["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e["label"] for e in examples])}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--save-every", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig.from_preset("tiny", vocab_size=64, max_position_embeddings=32,
                                    hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    model = BertForSequenceClassification(config)
    data = Toy()
    cfg = TrainConfig(output_dir=a.out, max_steps=a.steps, batch_size=a.batch_size, grad_accum_steps=a.accum,
                      learning_rate=1e-3, warmup_steps=2, save_every=a.save_every, log_every=1, seed=0,
                      progress=False)
    callbacks = [lambda trainer, step, record: time.sleep(a.slow)] if a.slow else []
    trainer = Trainer(model, data, collate, cfg, callbacks=callbacks)
    result = trainer.train(resume=a.resume)
    rank = trainer.rank
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "cls.predictions.decoder.weight"}
    save_file(state, str(Path(a.out) / f"final-rank{rank}.safetensors"))
    losses = [r["train_loss"] for r in result.history if "train_loss" in r]
    (Path(a.out) / f"losses-rank{rank}.json").write_text(json.dumps(losses))


if __name__ == "__main__":
    main()
