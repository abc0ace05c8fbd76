"""Every drop reason is documented for operators who see it on a dashboard."""

from pathlib import Path

from operators.drops import Drop

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_drop_reason_is_named_in_the_docs():
    text = " ".join(page.read_text() for page in DOCS.glob("*.md"))
    assert [d for d in Drop if f"`{d}`" not in text and f'"{d}"' not in text] == []
