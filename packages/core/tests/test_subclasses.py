"""Classification trained on sub-classes: the contract's ``subclasses`` field and how it
reaches a model's factory (or is refused for a model that cannot take it)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mars_core.data import InputContract, Normalisation
from mars_core.engine.components import fill_from_contract
from mars_core.errors import MarsError
from mars_core.tasks import TaskKind


def contract(**kw) -> InputContract:
    base = dict(kind=TaskKind.CLASSIFICATION, bands=["gray"], normalisation=Normalisation(mean=[0.0], std=[1.0]),
                tile_size=32, classes=["dry", "wet"])
    return InputContract(**{**base, **kw})


def takes_subclasses(in_channels: int = 1, num_classes: int = 2, subclasses: list[int] | None = None) -> None:
    return None


def takes_classes_only(in_channels: int = 1, num_classes: int = 2) -> None:
    return None


def test_a_model_that_takes_subclasses_gets_their_counts_in_class_order():
    c = contract(subclasses={"dry": ["dune", "crater", "plain"], "wet": ["gully"]})
    assert fill_from_contract(takes_subclasses, {}, c, "m") == {"in_channels": 1, "num_classes": 2,
                                                                "subclasses": [3, 1]}
    # the config wins when it says it, as for num_classes
    assert fill_from_contract(takes_subclasses, {"subclasses": [2, 2]}, c, "m")["subclasses"] == [2, 2]


def test_without_subclasses_nothing_changes():
    assert fill_from_contract(takes_subclasses, {}, contract(), "m") == {"in_channels": 1, "num_classes": 2}
    assert fill_from_contract(takes_classes_only, {}, contract(), "m") == {"in_channels": 1, "num_classes": 2}


def test_a_model_that_cannot_take_subclasses_is_refused_by_name():
    c = contract(subclasses={"dry": ["dune"], "wet": ["gully"]})
    with pytest.raises(MarsError, match=r"\(dry: dune; wet: gully\) but model 'baseline' takes no 'subclasses'"):
        fill_from_contract(takes_classes_only, {}, c, "baseline")


@pytest.mark.parametrize("bad", [
    {"wet": ["gully"], "dry": ["dune"]},  # not in class order
    {"dry": ["dune"]},                    # a class missing
    {"dry": ["dune"], "wet": []},         # a class without sub-classes
])
def test_the_contract_refuses_subclasses_that_do_not_cover_the_classes(bad):
    with pytest.raises(ValidationError, match="subclasses must give each class"):
        contract(subclasses=bad)


def test_subclasses_are_for_classification_only_and_survive_a_round_trip():
    with pytest.raises(ValidationError, match="classification only"):
        contract(kind=TaskKind.SEGMENTATION, subclasses={"dry": ["dune"], "wet": ["gully"]})
    c = contract(subclasses={"dry": ["dune", "plain"], "wet": ["gully"]})
    back = InputContract.model_validate_json(c.model_dump_json())
    assert back.subclasses == {"dry": ["dune", "plain"], "wet": ["gully"]}
    assert InputContract.model_validate_json(contract().model_dump_json()).subclasses == {}
