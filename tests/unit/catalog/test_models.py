"""The catalog's rules: SizeRule.check, and the data of catalog.json against the docs."""

from __future__ import annotations

from datetime import date

import pytest

from volcimage.catalog.models import SizeRule, load_catalog
from volcimage.core.config import ConfigError, load_settings
from volcimage.core.errors import ValidationError

SIDES = SizeRule(mode="sides", min_side=512, max_side=2048)
AREA = SizeRule(
    mode="area", min_pixels=1024 * 1024, max_pixels=4096 * 4096, min_ratio=1 / 3, max_ratio=3
)


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        ((512, 512), True),  # both bounds are inclusive
        ((2048, 2048), True),
        ((512, 2048), True),  # sides are checked one by one: any ratio within them
        ((511, 1024), False),
        ((1024, 511), False),
        ((2049, 1024), False),
        ((1024, 2049), False),
    ],
)
def test_sides_bound_each_side(size: tuple[int, int], ok: bool) -> None:
    assert (SIDES.check(*size) is None) is ok


def test_a_side_out_of_range_names_the_range() -> None:
    assert SIDES.check(511, 1024) == "width and height must each be 512–2048 px"


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        ((1024, 1024), True),  # the smallest area
        ((4096, 4096), True),  # the largest
        ((3072, 1024), True),  # ratio 3: the widest
        ((1024, 3072), True),  # 1/3: the tallest
        ((1024, 1023), False),
        ((4096, 4097), False),
        ((3073, 1024), False),
        ((1024, 3073), False),
    ],
)
def test_area_bounds_pixels_and_ratio(size: tuple[int, int], ok: bool) -> None:
    assert (AREA.check(*size) is None) is ok


def test_area_messages_say_what_was_given_and_allowed() -> None:
    assert AREA.check(1000, 1000) == (
        "width × height must be 1,048,576–16,777,216 pixels (got 1,000,000)"
    )
    assert AREA.check(4000, 1000) == "aspect ratio (width / height) must be between 1:3 and 3:1"


def test_area_checks_pixels_before_ratio() -> None:
    """A zero side is out of the area's range, not a division by zero."""
    assert "pixels" in (AREA.check(2048, 0) or "")


def test_an_area_rule_without_bounds_takes_any_positive_size() -> None:
    rule = SizeRule(mode="area")
    assert rule.check(1, 1) is None
    assert rule.check(65536, 1) is None


def test_an_adaptive_size_takes_no_size_at_all() -> None:
    rule = SizeRule(mode="adaptive")
    assert rule.check(1024, 1024) == "the size follows the reference image; give no width or height"


def test_default_model_exists_and_sizes_of_presets_are_valid() -> None:
    catalog = load_catalog()
    catalog.get(catalog.default_model)
    for model in catalog.models:
        if model.size_rule.mode == "adaptive":
            assert not model.size_presets
            assert model.min_reference_images == 1 or model.takes_source, model.id
            continue
        for preset in [model.default_size, *model.size_presets]:
            width, height = map(int, preset.split("x"))
            assert model.size_rule.check(width, height) is None, (model.id, preset)


@pytest.mark.parametrize(
    ("model", "size", "ok"),
    [
        ("seedream-3.0", (512, 2048), True),
        ("seedream-3.0", (511, 1024), False),
        ("seedream-4.0", (1280, 720), True),
        ("seedream-4.0", (1280, 719), False),
        ("seedream-4.0", (4096, 4096), True),
        ("seedream-4.0", (4097, 4096), False),
        ("seedream-4.5", (2560, 1440), True),
        ("seedream-4.5", (1920, 1080), False),
        ("seedream-4.0", (4096, 255), False),
    ],
)
def test_size_rules_follow_the_docs(model: str, size: tuple[int, int], ok: bool) -> None:
    assert (load_catalog().get(model).size_rule.check(*size) is None) is ok


def test_an_unknown_model_is_a_validation_error_listing_the_known_ones() -> None:
    catalog = load_catalog()
    with pytest.raises(ValidationError) as info:
        catalog.get("nope")
    assert info.value.details == {"field": "model", "allowed": [m.id for m in catalog.models]}


def test_every_model_is_found_by_its_provider_and_upstream_id() -> None:
    """How the emulator finds the limits it enforces."""
    catalog = load_catalog()
    for model in catalog.models:
        assert catalog.upstream(model.provider, model.upstream_id) is model
    seedream = catalog.get("seedream-3.0")
    assert catalog.upstream("visual", seedream.upstream_id) is None
    assert catalog.upstream("ark", "doubao-nope") is None


def test_default_dimensions_read_the_default_size() -> None:
    assert load_catalog().get("seedream-3.0").default_dimensions == (1024, 1024)
    assert load_catalog().get("jimeng-3.1").default_dimensions == (1328, 1328)


# ---- prices, retirement, facts (issue 17) ----------------------------------------------------


def test_a_price_is_the_latest_one_in_effect_on_the_day() -> None:
    jimeng = load_catalog().get("jimeng-4.0")
    assert jimeng.price(2048, 2048, on=date(2026, 3, 30)) == 0.2
    assert jimeng.price(2048, 2048, on=date(2026, 3, 31)) == 0.22  # the docs: from 2026-03-31
    assert jimeng.price(2048, 2048, on=date(2020, 1, 1)) == 0.2  # before any: the first


def test_a_tiered_price_goes_by_the_output_size() -> None:
    pro = load_catalog().get("seedream-5.0-pro")
    assert pro.price(1536, 1536, on=date(2026, 7, 1)) == 0.30  # up to 2.36 MP
    assert pro.price(2048, 2048, on=date(2026, 7, 1)) == 0.60
    assert pro.price_per_image == 0.30  # at its default size, 1536×1536


def test_the_api_shows_prices_with_dates_and_what_is_unconfirmed() -> None:
    dumped = load_catalog().get("seedream-5.0-pro").model_dump(mode="json")
    assert dumped["prices"][0] == {"per_image": 0.3, "since": "2026-06-28", "max_pixels": 2360000}
    assert dumped["confirmed"] is False and "upstream_id" in dumped["unconfirmed"]
    assert load_catalog().get("seedream-4.5").model_dump()["confirmed"] is True


def test_an_operator_retires_models_and_overrides_prices_by_id() -> None:
    operator = load_settings(
        _env_file=None, RETIRED_MODELS="seededit-3.0", PRICE_OVERRIDES="jimeng-4.0=0.3"
    )
    catalog = load_catalog().configured(operator)
    assert catalog.get("seededit-3.0").retired and not catalog.get("seedream-4.0").retired
    assert catalog.get("jimeng-4.0").price_per_image == 0.3
    assert not load_catalog().get("seededit-3.0").retired  # the packaged catalog is unchanged
    for name in ("RETIRED_MODELS", "MODEL_IMAGES_PER_MINUTE", "MODEL_REQUEST_TIMEOUTS"):
        value = "seededit-3=5" if name.startswith("MODEL") else "seededit-3"
        typo = load_settings(_env_file=None, **{name: value})
        with pytest.raises(ConfigError, match=f"{name}: seededit-3"):
            load_catalog().configured(typo)


def test_the_upstream_finds_a_model_by_its_alias() -> None:
    catalog = load_catalog()
    lite = catalog.upstream("ark", "doubao-seedream-5-0-lite-260128")
    assert lite is not None and lite.id == "seedream-5.0-lite"
    assert catalog.upstream("visual", "doubao-seedream-5-0-lite-260128") is None


def test_every_model_has_a_price_and_every_tool_a_source() -> None:
    for model in load_catalog().models:
        assert model.prices, model.id
        assert model.takes_source == (model.kind != "t2i" and model.min_reference_images == 0)
