"""Entries that carry their own question's facts (gold answer, passage text, its names) are mended or refused."""

from __future__ import annotations

import json

from experience_fixtures import make_trajectory, write_trajectories

from hiexp.experience.distill import DistillConfig, distill
from hiexp.experience.leaks import LeakFilter
from hiexp.io import read_jsonl
from tests.fakes import ScriptedGenerator

PASSAGE = ("Steven Allan Spielberg was born on December 18, 1946, in Cincinnati, Ohio, and grew up in Phoenix "
           "before he moved to California.")


def test_the_gold_answer_as_whole_words_is_a_leak():
    leaks = LeakFilter(["The United States"])
    assert leaks.reason(["Remember that the answer was United States."]) == "gold_answer"
    assert leaks.reason(["Search for the country of birth, not the city."]) is None
    assert LeakFilter(["1903"]).reason(["The correct answer was 1903"]) == "gold_answer"
    assert LeakFilter(["1903"]).reason(["Years such as 19035 are not it"]) is None  # whole words only


def test_yes_no_and_one_letter_answers_are_ordinary_words():
    assert LeakFilter(["yes"]).reason(["Answer yes or no for comparison questions."]) is None
    assert LeakFilter(["A"]).reason(["Pick a query with a name in it."]) is None


def test_copied_passage_text_and_passage_headers_are_leaks():
    leaks = LeakFilter(["Cincinnati"], passages=[PASSAGE], min_copy_words=8)
    assert leaks.reason(["He was born on December 18, 1946, in Cincinnati"]) == "gold_answer"
    copy = "Note: grew up in Phoenix before he moved to California so search there."
    assert leaks.reason([copy]) == "passage_copy"
    assert leaks.reason(["Doc 4(Title: Jaws) is the passage to read"]) == "passage_copy"
    assert leaks.reason(["Search the director's birthplace with the full name."]) is None


def test_distill_refuses_leaking_entries_and_counts_them(tmp_path):
    trajectories = [make_trajectory("q1", 0, True, golden="Marseille"), make_trajectory("q1", 1, False, golden="Marseille")]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    good = {"title": "Search the full name", "description": "Put the whole name in the query.", "thinking": "It worked."}
    leak = {"title": "Answer Marseille", "description": "The correct answer was Marseille.", "thinking": "Gold."}
    reflector = ScriptedGenerator([json.dumps([leak, good])])
    out = tmp_path / "e1.jsonl"
    summary = distill([path], out, reflector, DistillConfig(), show_progress=False)
    assert [e["title"] for e in read_jsonl(out)] == ["Search the full name"]
    assert summary.entries_rejected == {"gold_answer": 1}
    assert "refused 1 entries" in summary.render()
    status = read_jsonl(tmp_path / "e1.groups.jsonl")[0]
    assert status["rejected"] == [{"title": "Answer Marseille", "reason": "gold_answer"}]


def test_a_reply_of_only_leaks_is_asked_again_with_the_reason(tmp_path):
    trajectories = [make_trajectory("q1", 0, True, golden="Marseille"), make_trajectory("q1", 1, False, golden="Marseille")]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    leak = {"title": "Answer Marseille", "description": "It is Marseille.", "thinking": "Gold."}
    good = {"title": "Search the full name", "description": "Put the whole name in the query.", "thinking": "It worked."}
    reflector = ScriptedGenerator([json.dumps([leak]), json.dumps([good])])
    summary = distill([path], tmp_path / "e1.jsonl", reflector, DistillConfig(), show_progress=False)
    assert summary.groups_ok == 1 and summary.entries_written == 1
    assert "replaced by its kind" in reflector.prompts[1]
    assert summary.entries_rejected == {"gold_answer": 1}


def test_the_filter_can_be_switched_off(tmp_path):
    trajectories = [make_trajectory("q1", 0, True, golden="Marseille"), make_trajectory("q1", 1, False, golden="Marseille")]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    leak = {"title": "Answer Marseille", "description": "It is Marseille.", "thinking": "Gold."}
    reflector = ScriptedGenerator([json.dumps([leak])])
    summary = distill([path], tmp_path / "e1.jsonl", reflector, DistillConfig(reject_leaks=False), show_progress=False)
    assert summary.entries_written == 1 and summary.entries_rejected == {}


def test_names_of_the_question_are_leaks_kinds_of_things_are_not():
    leaks = LeakFilter(["Jacques Tourneur"], question="Who has worked for more film companies, Kelly Reichardt or "
                                                        "Jacques Tourneur?")
    assert leaks.reason(["A director's filmography", "List every film company of a director."]) is None
    assert leaks.reason(["Reichardt's film companies"]) == "question_name"
    assert leaks.reason(["Kelly's filmography"]) == "question_name"
    assert leaks.reason(["Who has worked for more companies", "Count the companies of each director."]) is None
    years = LeakFilter(["no"], question="Were the Commodore 16 and the CP-400 released before 1985?")
    assert years.reason(["Released before a year", "Compare each release year with 1985."]) == "question_name"
    assert years.reason(["Compare a computer's release year with the year asked about."]) is None
    assert years.reason(["Commodore computers"]) == "question_name"


QUESTION = "Who has worked for more film companies, Kelly Reichardt or Jacques Tourneur?"


def test_rewrite_drops_answer_sentences_and_puts_letters_for_the_question_s_names():
    leaks = LeakFilter(["Jacques Tourneur"], question=QUESTION)
    mended = leaks.rewrite(
        "Comparing two directors",
        "Search for Kelly Reichardt's film companies directly. The answer was Jacques Tourneur. "
        "Then do the same for the other one.",
        "Kelly was found at once.", ["Reichardt", "directors"])
    assert mended == ("Comparing two directors",
                      "Search for X's film companies directly. Then do the same for the other one.",
                      "X was found at once.", ["directors"])
    assert leaks.reason(list(mended[:3])) is None


def test_rewrite_names_numbers_by_their_kind_and_keeps_numbers_inside_names():
    leaks = LeakFilter(["HBO World Championship Boxing"],
                       question="Which sports series that premiered in 1973 was broadcast by Channel 8?")
    title, description, _, _ = leaks.rewrite("A series that premiered in 1973 on Channel 8",
                                             "The answer is HBO World Championship Boxing. Search by network and year.")
    assert title == "A series that premiered in a year on X" and description == "Search by network and year."


def test_rewrite_refuses_what_cannot_be_mended():
    leaks = LeakFilter(["Marseille"], passages=[PASSAGE], question="Where was Zidane born?")
    assert leaks.rewrite("Answer Marseille", "Marseille it is.") is None  # nothing of the title is left
    assert leaks.rewrite("Birthplace questions", "He grew up in Phoenix before he moved to California.") is None


def test_distill_mends_entries_it_can_and_reports_them(tmp_path):
    question = "Where was Zinedine Zidane born?"
    trajectories = [make_trajectory("q1", 0, True, question=question, golden="Marseille"),
                    make_trajectory("q1", 1, False, question=question, golden="Marseille")]
    path = write_trajectories(tmp_path / "t.jsonl", trajectories)
    named = {"title": "Birthplace of a footballer", "description": "Search Zinedine Zidane birthplace by full name. "
             "It was Marseille.", "thinking": "The full name found it."}
    reflector = ScriptedGenerator([json.dumps([named])])
    out = tmp_path / "e1.jsonl"
    summary = distill([path], out, reflector, DistillConfig(), show_progress=False)
    [entry] = read_jsonl(out)
    assert entry["description"] == "Search X birthplace by full name."
    assert summary.entries_rewritten == {"gold_answer": 1} and summary.entries_rejected == {}
    assert "mended 1 entries" in summary.render()
    assert read_jsonl(tmp_path / "e1.groups.jsonl")[0]["rewritten"][0]["reason"] == "gold_answer"
    off = distill([path], tmp_path / "off.jsonl", ScriptedGenerator([json.dumps([named])] * 3),
                  DistillConfig(rewrite_leaks=False), show_progress=False)
    assert off.entries_written == 0 and off.entries_rejected == {"gold_answer": 3}


def test_names_only_the_passages_mention_are_mended_like_the_questions():
    passage = ("Zero to One is a 2014 book by the venture capitalist Peter Thiel. In it, the author argues that "
               "start-ups should aim for a monopoly.")
    leaks = LeakFilter(["Zero to One"], passages=[passage], titles=["Zero to One", "Founders Fund"],
                       question="Which book did the co-founder of PayPal write in 2014?")
    assert leaks.reason(["Search for Peter Thiel and then his book."]) == "passage_name"
    assert leaks.reason(["Search for the co-founder's books by year."]) is None
    assert leaks.reason(["Founders Fund invested in it"]) == "passage_name"  # a title's words are names
    assert leaks.reason(["In a list of books, check the year."]) is None  # sentence-opening words are not names
    title, description, _, _ = leaks.rewrite("Searching for Peter Thiel's book",
                                              "Search for Peter Thiel first, then for the books of Thiel.")
    assert title == "Searching for X's book"
    assert description == "Search for X first, then for the books of X."


def test_a_word_the_passages_also_write_in_lower_case_is_not_a_name():
    leaks = LeakFilter(["1999"], passages=["The band released Search Party in 1999.", "a search party was formed"])
    assert leaks.reason(["Search for the band's albums first."]) is None
    assert leaks.reason(["Look up Party releases."]) is None
