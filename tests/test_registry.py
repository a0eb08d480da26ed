"""The registry: names to factories, options, user modules, and checkpoints that name their
components (with the migration of the format before them)."""

from __future__ import annotations

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl.io.checkpoint import CHECKPOINT_FORMAT, migrate, save_checkpoint
from pyro_emorl.registry import Registry, import_components
from tests.tiny import tiny_config


def test_the_library_registers_its_components_like_a_user() -> None:
    names = {(e.kind, e.name) for e in pe.registered()}
    assert {("prior", "reversed++"), ("likelihood", "mixture"), ("decoder", "small")} <= names
    assert {("model", "emorl"), ("model", "slot_attention"), ("preset", "tetrominoes")} <= names
    entry = pe.registry.REGISTRY.get("prior", "reversed++")
    assert entry.source == "pyro_emorl.models.priors:reversed_plus_plus"
    assert pe.registry.REGISTRY.get("preset", "tetrominoes_fast").extras["data"] == "tetrominoes"


def test_options_are_the_factory_keyword_arguments() -> None:
    registry = Registry()

    @registry.register("prior", "p")
    def factory(config: object, *, scale: float = 1.0, hidden: int = 8) -> object:
        """A prior."""
        return (scale, hidden)

    entry = registry.get("prior", "p")
    assert entry.options() == {"scale": 1.0, "hidden": 8} and entry.summary == "A prior."


def test_a_taken_name_is_refused_but_the_same_factory_may_register_again() -> None:
    registry = Registry()

    def first(config: object) -> None:
        """One."""

    def second(config: object) -> None:
        """Two."""

    registry.register("likelihood", "x")(first)
    registry.register("likelihood", "x")(first)  # a module imported twice
    with pytest.raises(ValueError, match="a likelihood named 'x' is already registered"):
        registry.register("likelihood", "x")(second)
    with pytest.raises(ValueError, match="unknown kind 'priors'"):
        registry.register("priors", "y")
    with pytest.raises(ValueError, match="needs config=, a ModelConfig subclass"):
        registry.register("model", "m")
    with pytest.raises(ValueError, match="no decoder named 'z' is registered .registered: none."):
        registry.get("decoder", "z")


def test_options_reach_the_factory_and_unknown_ones_are_refused() -> None:
    with pytest.raises(ValueError, match=r"the prior 'reversed\+\+' has no option\(s\) \['x'\]"):
        tiny_config(prior_options={"x": 1})
    with pytest.raises(ValueError, match="prior_options must be a mapping"):
        tiny_config(prior_options=[1])


def test_import_components_explains_what_went_wrong(tmp_path) -> None:
    with pytest.raises(ValueError, match="--import .*missing.py: no such file"):
        import_components(str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match="--import no_such_module_here: No module named"):
        import_components("no_such_module_here")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match="--import .*broken.py failed: RuntimeError: boom"):
        import_components(str(broken))


def _checkpoint(tmp_path, built_from: pe.ModelConfig, **changes: object):
    model, guide = pe.build(built_from)
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": 1,
        "config": built_from.to_dict(),
        "components": pe.registry.components_of(built_from),
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "geco": None,
        **changes,
    }
    return save_checkpoint(state, tmp_path / "c.pt"), model


def test_a_checkpoint_records_and_needs_its_component_names(tmp_path) -> None:
    config = tiny_config()
    path, _ = _checkpoint(tmp_path, config)
    assert pe.load_for_inference(path).config == config
    components = pe.registry.components_of(config)
    assert components["prior"] == {
        "name": "reversed++",
        "source": "pyro_emorl.models.priors:reversed_plus_plus",
    }
    # A prior this process has never registered: refused in one line naming it.
    record = {**components, "prior": {"name": "vamp", "source": "my_priors:vamp"}}
    config_dict = {**config.to_dict(), "prior": "vamp"}
    path, _ = _checkpoint(tmp_path, config, components=record, config=config_dict)
    with pytest.raises(ValueError, match=r"trained with the prior 'vamp' \(my_priors:vamp\)"):
        pe.load_for_inference(path)


def test_a_newer_format_is_refused_naming_both_versions(tmp_path) -> None:
    path, _ = _checkpoint(tmp_path, tiny_config(), format=CHECKPOINT_FORMAT + 1)
    with pytest.raises(ValueError, match=f"format {CHECKPOINT_FORMAT + 1}; this version .* 1 to"):
        pe.load_for_inference(path)
    with pytest.raises(ValueError, match=f"format {CHECKPOINT_FORMAT + 1}"):
        pe.io.load_checkpoint(path)


def test_format_1_checkpoints_are_migrated(tmp_path) -> None:
    config = tiny_config()
    model, guide = pe.build(config)
    # Format 1 had no model name in old configurations, no options and no component record.
    old_config = config.to_dict()
    for key in ("model", "prior_options", "likelihood_options", "decoder_options"):
        del old_config[key]
    old = {"format": 1, "step": 3, "config": old_config}
    old |= {"model": model.state_dict(), "guide": guide.state_dict(), "geco": None}
    save_checkpoint(old, tmp_path / "old.pt")
    loaded = pe.load_for_inference(tmp_path / "old.pt")
    assert loaded.config == config
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value)

    # Slot Attention configurations of format 1 carried EfficientMORL's fields.
    slots = pe.presets.slot_attention_tetrominoes()
    data = {**slots.to_dict(), "prior": "reversed++", "kl_beta": 1.0, "dual_gru": True}
    data |= {"step_weights": [1.0], "geco": None}
    migrated = migrate({"format": 1, "config": data})
    assert pe.registry.config_from_dict(migrated["config"]) == slots
    assert migrated["components"]["model"]["name"] == "slot_attention"


def test_the_shipped_model_is_format_1_and_loads() -> None:
    raw = torch.load(pe.io.pretrained.pretrained_path("tetrominoes"), weights_only=True)
    assert raw["format"] == 1
    loaded = pe.load_for_inference("tetrominoes")
    assert loaded.config == pe.presets.tetrominoes_fast(training=loaded.config.training)
