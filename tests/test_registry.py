"""The shared spec registry behind layers, losses, optimizers and schedules."""

import pytest

from tinynet.registry import from_spec, to_spec


class Thing:
    def __init__(self, size: int = 1) -> None:
        self.size = size

    def get_config(self) -> dict:
        return {"size": self.size}


class Loss:
    def get_config(self) -> dict:
        return {}


REGISTRY = {"Thing": Thing}


def test_round_trip_and_prepare():
    spec = to_spec(Thing(3), REGISTRY, "thing")
    assert spec == {"class_name": "Thing", "config": {"size": 3}}
    assert from_spec(spec, REGISTRY, "thing").size == 3
    doubled = from_spec(
        spec, REGISTRY, "thing", prepare=lambda c: {"size": c["size"] * 2}
    )
    assert doubled.size == 6
    assert spec["config"] == {"size": 3}  # prepare gets a copy


def test_refusals_name_the_kind_and_the_known_classes():
    class SubThing(Thing):
        pass

    with pytest.raises(TypeError, match="SubThing is not a registered tinynet thing"):
        to_spec(SubThing(), REGISTRY, "thing")
    with pytest.raises(TypeError, match="known losses: Thing"):
        to_spec(Loss(), REGISTRY, "loss")
    with pytest.raises(ValueError, match="an optimizer spec must be a dict"):
        from_spec({"class_name": "Thing"}, REGISTRY, "optimizer")
    with pytest.raises(ValueError, match="unknown thing class 'os.system'; known"):
        from_spec({"class_name": "os.system", "config": {}}, REGISTRY, "thing")
    with pytest.raises(ValueError, match="unknown thing class \\['Thing'\\]"):
        from_spec({"class_name": ["Thing"], "config": {}}, REGISTRY, "thing")
    with pytest.raises(ValueError, match="config of thing 'Thing' must be a dict"):
        from_spec({"class_name": "Thing", "config": [1]}, REGISTRY, "thing")
    with pytest.raises(ValueError, match="invalid config for thing 'Thing'"):
        from_spec({"class_name": "Thing", "config": {"colour": 1}}, REGISTRY, "thing")
