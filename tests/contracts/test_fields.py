from dataclasses import asdict

from hiexp.contracts.fields import field_of
from hiexp.contracts.trajectory import Turn


def test_a_field_reads_the_same_from_a_record_and_from_its_dict():
    turn = Turn(role="experience", text="x", meta={"entry_ids": ["E1-1"]})
    for record in (turn, asdict(turn)):
        assert field_of(record, "role") == "experience"
        assert field_of(record, "meta") == {"entry_ids": ["E1-1"]}
        assert field_of(record, "missing", "fallback") == "fallback"
