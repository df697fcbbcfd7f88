"""The compact table of a decisions store (pipeline/decision_table.py): a later row for a photo replaces the earlier."""

from pipeline.decision_table import Decision, DecisionTableBuilder


def test_a_later_decision_for_a_photo_replaces_its_note_and_image_whole():
    table = DecisionTableBuilder()
    table.add("7", 0, "looks fine", "ab" * 32)
    table.add("5", 2, "blurry", "")
    table.add("7", 0, "", "")
    built = table.table()
    assert built.get("7") == Decision("accept", "", "") and built.get("5") == Decision("reject_other", "blurry", "")
    assert built.get("6") is None and built.get("6", Decision("accept", "")) == Decision("accept", "")
    assert DecisionTableBuilder().table().get("7") is None and "7" not in DecisionTableBuilder().table()
