"""Build a Hugging Face Hub cache folder by hand, laid out as huggingface_hub does."""

from __future__ import annotations

import hashlib
from pathlib import Path


def populate_hub_cache(
    cache_dir: Path, repo_id: str, commit: str, files: dict[str, bytes], ref: str = "main"
) -> Path:
    """Write ``files`` as blobs + snapshot symlinks + a ref; return the snapshot folder."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()  # LFS etag = sha256
        blob.write_bytes(data)
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return snapshot


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
