"""``wsris export``: a training run or model folder -> a folder ready for the Hub.

The folder holds ``config.json``, ``model.safetensors`` and a ``README.md`` model card
whose YAML header the Hugging Face Hub reads (license, library name, tags, datasets and
the measured metrics as ``model-index``). Upload it as is (``hf upload USER/REPO
OUT_DIR``) and load it by name with ``wsris.load("hf-hub:USER/REPO")``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, ManifestError, OutputError, WeightsNotAvailableError
from .weights.sources import CONFIG_NAME, WEIGHTS_NAME

#: What an exported model folder holds; a folder with anything else is not replaced.
EXPORTED_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, "README.md"})

_STEP_FOLDER = re.compile(r"^model-step(\d+)$")


def is_model_folder(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def _step_of(folder: Path) -> int | None:
    match = _STEP_FOLDER.match(folder.name)
    return int(match.group(1)) if match else None


def resolve_model_folder(source: Path) -> tuple[Path, Path | None]:
    """``(model folder, run folder or None)`` for a model folder or a training run.

    A run's model is its final export ``model/`` if present, else its latest
    ``model-stepN/``; a run with only a checkpoint says how to export it first.
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise WeightsNotAvailableError(f"{source}: no such folder")
    if is_model_folder(source):
        run = source.parent if (source.parent / "recipe.json").is_file() else None
        return source, run
    if not (source / "recipe.json").is_file():
        raise WeightsNotAvailableError(
            f"{source} is neither a model folder ({CONFIG_NAME} + {WEIGHTS_NAME}) nor a "
            "training run (recipe.json)"
        )
    if is_model_folder(source / "model"):
        return source / "model", source
    steps = sorted(
        (s, p) for p in source.iterdir() if (s := _step_of(p)) is not None and is_model_folder(p)
    )
    if steps:
        return steps[-1][1], source
    raise WeightsNotAvailableError(
        f"{source}: the run has no exported model yet; run "
        f"`wsris train {source / 'recipe.json'} --output-dir {source} --export-only` first"
    )


def _recipe(run: Path) -> dict[str, Any]:
    try:
        recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{run / 'recipe.json'} is not readable JSON: {exc}") from exc
    return recipe if isinstance(recipe, dict) else {}


def _recipe_data(run: Path, part: str) -> Any:
    data = _recipe(run).get("data", {})
    return data.get(part) if isinstance(data, dict) else None


def run_metrics(run: Path, step: int | None) -> dict[str, Any]:
    """The validation record of ``step`` (else the last one) from ``val_log.jsonl``, with
    ``data`` naming the validation set from ``recipe.json``; {} when there is none."""
    log = run / "val_log.jsonl"
    if not log.is_file():
        return {}
    records = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a killed run
        if isinstance(record, dict):
            records.append(record)
    if not records:
        return {}
    chosen = next((r for r in records if step is not None and r.get("step") == step), records[-1])
    val = _recipe_data(run, "val")
    metrics = {k: v for k, v in chosen.items() if k not in ("step", "time")}
    if val:
        metrics = {"data": f"{val}, step {chosen.get('step')}", **metrics}
    return metrics


def export_model(
    source: str | Path,
    out_dir: str | Path,
    *,
    license_name: str | None = None,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    repo_id: str | None = None,
    weights_dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a Hub model card to ``out_dir``.

    ``source`` is a model folder or a training run's output folder. Metrics come from
    the model's config (``card.metrics``) or the run's ``val_log.jsonl``. ``repo_id``
    (``USER/REPO``) is what the card's usage example loads.

    ``out_dir`` must be new or empty; an earlier export (a folder holding only those
    three files) is replaced with ``overwrite``, and any other folder is refused. The
    model is written to a hidden folder beside ``out_dir`` that is renamed into place
    at the end, so a failure (a full disk) leaves ``out_dir`` as it was.
    """
    from .api import Segmenter
    from .model_card import card_metadata, render_model_card

    folder, run = resolve_model_folder(Path(source))
    out = Path(out_dir).expanduser()
    if out.resolve() == folder.resolve():
        raise InvalidInputError(f"{out} is the model folder itself: export to another folder")
    check_export_target(out, overwrite)
    seg = Segmenter.from_folder(folder, device="cpu")
    config = seg.config
    card = dict(config.get("card") or {})
    if run is not None:
        if not card.get("metrics"):
            metrics = run_metrics(run, _step_of(folder))
            if metrics:
                card["metrics"] = metrics
        if not card.get("data") and _recipe_data(run, "train"):
            card["data"] = _recipe_data(run, "train")
    config["card"] = card
    meta = card_metadata(config, None, license_name, datasets, tags)
    load_name = f"hf-hub:{repo_id}" if repo_id else None
    text = render_model_card(config, None, load_name=load_name, metadata=meta)
    return _write_into_place(
        out, lambda tmp: seg.save_pretrained(tmp, model_card=text, weights_dtype=weights_dtype)
    )


def check_export_target(out: Path, overwrite: bool) -> None:
    """Refuse an export folder that holds anything but an earlier export (and that one
    without ``overwrite``): an :class:`~wsris.errors.OutputError`."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; give a folder to export to")
    if not out.is_dir():
        return
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as exc:
        raise OutputError(f"cannot read {out}: {exc.strerror or exc}") from exc
    if not entries:
        return
    if not is_model_folder(out):
        raise OutputError(f"{out} is a folder that is not empty and not a wsris model; "
                          "export to a new or empty folder")
    extra = sorted(entries - EXPORTED_FILES)
    if extra:
        raise OutputError(f"{out} is a model folder that also holds {', '.join(extra[:3])}"
                          f"{' ...' if len(extra) > 3 else ''}; export to a new folder")
    if not overwrite:
        raise OutputError(f"{out} already holds a model; pass --overwrite to replace it")


def _write_into_place(out: Path, write: Any) -> Path:
    """``write(tmp)`` into a hidden folder beside ``out``, then rename it to ``out``
    (moving an earlier export aside first and removing it once the new one is there)."""
    from .safe_files import remove_leftovers, temp_prefix

    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".part", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write in {parent}: {exc.strerror or exc}") from exc
    old = None
    try:
        try:
            write(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write the model to {out}: {exc.strerror or exc}") from exc
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folders are private
        if out.is_dir() and any(out.iterdir()):
            # ".old", not ".part": were this run killed right here, the next run must
            # not take the earlier export for debris
            old = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), suffix=".old",
                                        dir=parent))
            os.replace(out, old)  # onto the empty folder just made
        try:
            os.replace(tmp, out)
        except OSError as exc:
            if old is not None:
                os.replace(old, out)
                old = None
            raise OutputError(f"cannot create {out}: {exc.strerror or exc} (someone else "
                              "wrote there meanwhile?)") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
