"""The spill journal read by other workers as it grows (`SpillTail`): each appended group exactly once, a file
emptied after its replay read again from its start, a torn tail read once complete."""

from __future__ import annotations

import os

from service.spill import SpillJournal, SpillTail


def test_spill_tail_reads_each_appended_group_once_across_files(tmp_path):
    first, second = SpillJournal(tmp_path), SpillJournal(tmp_path)
    tail = SpillTail(tmp_path)
    assert tail.new_groups() == []
    first.append({"n": 1})
    second.append({"n": 2})
    first.append({"n": 3})
    assert sorted(g["n"] for g in tail.new_groups()) == [1, 2, 3]
    assert tail.new_groups() == []
    second.append({"n": 4})
    assert tail.new_groups() == [{"n": 4}]


def test_spill_tail_rereads_a_journal_emptied_and_refilled(tmp_path):
    journal = SpillJournal(tmp_path)
    tail = SpillTail(tmp_path)
    for n in range(3):
        journal.append({"n": n, "pad": "x" * 50})
    assert len(tail.new_groups()) == 3
    journal.clear()  # replayed into the log
    assert tail.new_groups() == []
    journal.append({"n": 10})  # shorter than before: read from the start
    assert tail.new_groups() == [{"n": 10}]
    journal.clear()
    for n in range(20, 24):  # longer than the remembered offset: its bytes there are no record boundary
        journal.append({"n": n, "pad": "y" * 7})
    assert [g["n"] for g in tail.new_groups()] == [20, 21, 22, 23]


def test_spill_tail_reads_a_torn_record_once_it_is_complete(tmp_path):
    journal = SpillJournal(tmp_path)
    journal.append({"n": 1})
    whole = journal.path.read_bytes()
    journal.append({"n": 2})
    second = journal.path.read_bytes()[len(whole) :]
    tail = SpillTail(tmp_path)
    os.truncate(journal.path, len(whole) + len(second) // 2)  # the second record half written
    assert tail.new_groups() == [{"n": 1}]
    with open(journal.path, "ab") as out:
        out.write(second[len(second) // 2 :])
    assert tail.new_groups() == [{"n": 2}]
    assert tail.new_groups() == []
