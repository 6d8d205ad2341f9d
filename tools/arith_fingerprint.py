"""Does a numeric setting change the bits? The check behind CI's choice of ATEN_CPU_CAPABILITY.

Runs the real MiniLM (bertlab's own model, embedded weights) on fixed token ids and prints a
fingerprint of its hidden states. `.ci/run` calls it twice: once with the machine's default arithmetic
(saving the hidden states), once under the setting CI compares the notebooks with (`--against` the
saved file), and prints whether the bits differ and by how much:

    python tools/arith_fingerprint.py --save _build/arith-native.pt
    ATEN_CPU_CAPABILITY=default python tools/arith_fingerprint.py --against _build/arith-native.pt

The settings read at start-up (ATEN_CPU_CAPABILITY, OMP_NUM_THREADS, MKL_ENABLE_INSTRUCTIONS,
ONEDNN_MAX_CPU_ISA) are named in the output. Exit 0 either way: the line is for the log.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import torch

from bertlab import BertModel

SETTINGS = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")


def hidden_states() -> torch.Tensor:
    model = BertModel.from_pretrained("minilm-l6").eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (4, 64), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    with torch.no_grad():
        return model(ids).last_hidden_state.contiguous()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--save", type=Path, help="write the hidden states here (safetensors)")
    ap.add_argument("--against", type=Path, help="compare with hidden states saved by --save")
    args = ap.parse_args(argv)
    from safetensors.torch import load_file, save_file

    h = hidden_states()
    digest = hashlib.sha256(h.numpy().tobytes()).hexdigest()[:16]
    setting = ", ".join(f"{k}={os.environ[k]}" for k in SETTINGS if k in os.environ) or "machine defaults"
    line = f"MiniLM hidden states under {setting} (torch {torch.__version__}, capability " \
           f"{torch.backends.cpu.get_cpu_capability()}): sha256 {digest}"
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        save_file({"h": h}, str(args.save))
    if args.against:
        ref = load_file(str(args.against))["h"]
        diff = (h - ref).abs().max().item()
        same = torch.equal(h, ref)
        line += f"; against {args.against.name}: {'IDENTICAL bits' if same else 'bits differ'}, max |diff| {diff:.2e}"
        if same:
            line += " (this setting does not change the arithmetic on this machine)"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
