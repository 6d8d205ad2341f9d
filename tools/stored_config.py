"""Write a copy of _config.yml with notebook execution switched off.

Used by `make book-stored`: the site is rendered from the outputs stored in the notebooks.
Everything else is taken unchanged from _config.yml, which stays the one source of configuration.

usage: python tools/stored_config.py _config.yml _build/_config.stored.yml
"""

import sys
from pathlib import Path

import yaml


def main(src: str, dst: str) -> None:
    config = yaml.safe_load(Path(src).read_text(encoding="utf-8")) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    text = f"# Generated from {src} by tools/stored_config.py; do not edit.\n"
    text += yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    Path(dst).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
