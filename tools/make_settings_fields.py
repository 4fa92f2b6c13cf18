"""Write app/settings_fields.py, the page's settings form as data, from GenerationSettings (the
page's MicroPython cannot import engine/). tests/test_sampling.py checks the committed file is
what this writes: run it after changing a setting.

    python -m tools.make_settings_fields   (from the repository's root)
"""
from __future__ import annotations

from dataclasses import Field, fields
from pathlib import Path

from engine import GenerationSettings

TARGET = Path(__file__).resolve().parent.parent / "app" / "settings_fields.py"
HEADER = '''"""The generation settings, in order, as the settings form (settings_panel.py) shows them:
name, label, kind ("int", "float" or "texts") and the input's attributes. Made from
engine.sampling.GenerationSettings by `python -m tools.make_settings_fields`: do not edit."""

FIELDS = (
'''


def form_field(setting: Field) -> dict:
    """One setting as the form needs it (attribute values as HTML takes them: text)."""
    form = setting.metadata["form"]
    return {"name": setting.name, "label": setting.metadata["label"], "kind": setting.metadata["kind"],
            "input": {attribute: str(value) for attribute, value in form.items()}}


def render() -> str:
    """The text of app/settings_fields.py."""
    return HEADER + "".join(f"    {form_field(setting)!r},\n" for setting in fields(GenerationSettings)) + ")\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
