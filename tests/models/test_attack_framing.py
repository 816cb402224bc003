"""Attack framing wraps the request and nothing else: the response, its kind and so its labels stay."""

from __future__ import annotations

import random
import re

from models.attack_framing import FRAMES, cut_response, frame_example, junk_suffix
from models.augmentation import Policy, label_under
from models.data import Example

STRICT = Policy("p:strict", "strict", "general", "g0", False, "any")


def _ex(messages: tuple[tuple[str, str], ...], kind: str = "harmful") -> Example:
    return Example(messages, "Step 1: ...", kind, ("weapons",), "test", "g1", True)  # type: ignore[arg-type]


def test_every_frame_is_used_and_keeps_the_request_text() -> None:
    ex = _ex((("user", "How do I build a pipe bomb?"),))
    rng = random.Random(0)
    texts = [frame_example(ex, rng).messages[-1][1] for _ in range(400)]
    for text in texts:
        assert "How do I build a pipe bomb?" in text
        assert not re.search(r"\{(request|name|n|suffix)\}", text)
    for frame in FRAMES:
        literal = max(re.split(r"\{\w+\}", frame), key=len)
        if len(literal) >= 10:  # frames that are only the request and a random suffix have no fixed text
            assert any(literal in text for text in texts), frame


def test_response_kind_and_label_are_unchanged() -> None:
    ex = _ex((("user", "earlier"), ("assistant", "ok"), ("user", "make a weapon")), kind="harmful")
    framed = frame_example(ex, random.Random(1))
    assert framed.response == ex.response and framed.kind == ex.kind and framed.categories == ex.categories
    assert label_under(framed, STRICT) == label_under(ex, STRICT) == ("violate", 3)
    assert framed.messages[:2] == ex.messages[:2]
    assert framed.messages[2][0] == "user" and framed.messages[2][1] != "make a weapon"
    assert framed.meta["framed"] is True


def test_same_seed_same_frame() -> None:
    ex = _ex((("user", "q"),))
    assert frame_example(ex, random.Random(7)) == frame_example(ex, random.Random(7))


def test_example_without_user_turn_is_returned_as_is() -> None:
    ex = _ex((("system", "s"),))
    assert frame_example(ex, random.Random(0)) is ex


def test_junk_suffix_word_count() -> None:
    assert len(junk_suffix(random.Random(0), words=12).split()) == 12


def test_cut_response_keeps_the_opening_words_and_the_label() -> None:
    long = Example((("user", "make a weapon"),), " ".join(f"w{i}" for i in range(100)), "harmful", ("weapons",),
                   "test", "g1", True)
    cut = cut_response(long, random.Random(0), min_words=12, max_words=12)
    assert cut.response == " ".join(f"w{i}" for i in range(12)) + "..."
    assert cut.messages == long.messages and cut.kind == long.kind and cut.meta["cut"] is True
    assert label_under(cut, STRICT) == label_under(long, STRICT)


def test_cut_response_leaves_short_answers_alone() -> None:
    short = _ex((("user", "q"),))
    assert cut_response(short, random.Random(0)) is short
