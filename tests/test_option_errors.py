"""ir_env.option_errors: the option a constructor refused, read from Python's TypeError wording."""

import pytest

from ir_env.option_errors import non_number_option, repeated_keyword, unexpected_keyword
from ir_env.regions import make_proposer


class _Thing:
    def __init__(self, a: int = 1, b: float = 0.5) -> None:
        self.a, self.b = int(a), float(b)


def test_unexpected_and_repeated_keywords_are_named():
    with pytest.raises(TypeError) as e:
        _Thing(c=3)
    assert unexpected_keyword(e.value) == "c" and repeated_keyword(e.value) is None
    with pytest.raises(TypeError) as e:
        _Thing(1, a=2)
    assert repeated_keyword(e.value) == "a" and unexpected_keyword(e.value) is None
    assert unexpected_keyword(ValueError("something else")) is None


def test_non_number_option_names_the_key_whose_text_failed():
    kwargs = {"a": "3", "b": "half"}
    with pytest.raises(ValueError) as e:
        _Thing(**kwargs)
    assert non_number_option(e.value, kwargs) == ("b", "half")
    with pytest.raises(ValueError) as e:
        _Thing(a="x1")
    assert non_number_option(e.value, {"a": "x1"}) == ("a", "x1")
    assert non_number_option(ValueError("could not convert string to float: 'zz'"), {"a": "1"}) is None


def test_make_proposer_names_unknown_and_fixed_options():
    with pytest.raises(ValueError, match="'grid' has no option 'bogus'"):
        make_proposer("grid", bogus=1)
    with pytest.raises(ValueError, match="'grid' sets min_area_frac itself; it is not an option"):
        make_proposer("grid", min_area_frac=0.1)
