"""`LABEL=SOURCE` model specifications of the command-line tools and the Space (`--model LoL=org/mirnet-lol`).

Not part of what travels with a checkpoint: only the tools that take several models by label use it.
"""

import os


class ModelSpecError(ValueError):
    """A `--model` specification that names no model, or gives one label twice."""


def default_label(source: str) -> str:
    """The label a model gets without `LABEL=`: "LoL" / "SICE" when its name says so, else its folder or repo name."""
    name = os.path.basename(source.rstrip("/\\")) or source
    lowered = name.lower()
    if "sice" in lowered:
        return "SICE"
    if "lol" in lowered:
        return "LoL"
    return name


def parse_model_specs(specs, label_for=default_label) -> dict[str, str]:
    """["LoL=org/mirnet-lol", "path/mirnet-sice", "a,b"] -> {"LoL": "org/mirnet-lol", "SICE": "path/mirnet-sice", ...}.

    Each spec is `LABEL=SOURCE` or a bare SOURCE (a folder or Hub id), and may hold several, comma-separated. A bare
    source is labelled by `label_for(source)` (`default_label`: LoL / SICE / its name); when that label is taken,
    by its folder or repo name. Raises ModelSpecError (a ValueError) for an empty source or a label given twice.
    """
    models: dict[str, str] = {}
    for spec in [specs] if isinstance(specs, str) else specs or []:
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            label, sep, source = (part.strip() for part in item.partition("="))
            if not sep:
                label, source = "", item
            if not source:
                raise ModelSpecError(f"{item!r}: no model after '=': expected LABEL=FOLDER_OR_HUB_ID")
            if not label:
                label = label_for(source)
                if label in models:  # two "LoL" folders: fall back to the folder names
                    label = os.path.basename(source.rstrip("/\\")) or source
            if label in models:
                raise ModelSpecError(f"two models labelled {label!r} ({models[label]} and {source}): name them with LABEL=SOURCE")
            models[label] = source
    return models


__all__ = ["ModelSpecError", "default_label", "parse_model_specs"]
