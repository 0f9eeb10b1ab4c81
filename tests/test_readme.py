"""The README is the front door: every command it shows must say what it needs, and its pointers must lead somewhere."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
# what a script imports that only the `train` extra installs (modeling_mirnet.data reads datasets with `datasets`)
TRAIN_EXTRA_IMPORTS = ("modeling_mirnet.data", "import datasets", "from datasets", "accelerate", "import yaml", "matplotlib")


def sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", README, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def needs_train_extra(script: str) -> bool:
    source = (REPO / script).read_text()
    return any(name in source for name in TRAIN_EXTRA_IMPORTS)


def test_every_command_that_needs_the_train_extra_says_so_where_it_is_shown():
    checked = set()
    for title, text in sections().items():
        for script in re.findall(r"(?:python|accelerate launch) ((?:train|benchmarks|scripts)/\w+\.py)", text):
            if needs_train_extra(script):
                checked.add(script)
                assert "`train` extra" in text or '".[train]"' in text, f"{title}: {script} needs the train extra"
    assert {"train/evaluate.py", "benchmarks/well_lit.py", "train/train.py", "train/prepare_dataset.py"} <= checked


def test_pointers_to_other_sections_name_them_and_the_right_direction():
    titles = list(sections())
    references = re.findall(r"\*([^*]+)\* (above|below)", README)
    assert references
    for title, direction in references:
        assert title in titles, f"*{title}*: no such section"
        heading, mention = README.index(f"## {title}"), README.index(f"*{title}* {direction}")
        assert (heading < mention) == (direction == "above"), f"*{title}* is not {direction}"


def test_the_data_it_does_not_ship_says_where_to_get_it():
    assert "data/lol" in README and "https://daooshee.github.io/BMVC2018website/" in README
    assert len(README.splitlines()) < 200
