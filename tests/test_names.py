"""How a name from outside becomes each name it must be (vmwave/domain/names.py), and what is shown of it."""

import pytest
from hypothesis import given, settings, strategies as st

from vmwave.domain.names import (
    is_k8s_name,
    is_wave_id,
    k8s_name,
    limit_name,
    markdown_cell,
    printable,
    target_name,
    wave_id,
)

PREFECT_BANNED = "/%&><"


@pytest.mark.parametrize(
    "source,target",
    [("Web 01", "web-01"), ("Café-01", "cafe-01"), ("..%2f..%2fetc%2fpasswd", "etc-passwd"), ("web-01", "web-01")],
)
def test_readable_names_stay_readable(source, target):
    assert target_name(source) == target


def test_names_of_other_scripts_stay_apart():
    made = {target_name(n) for n in ("数据库-01", "数据库-02", "🚀", "🛰", "مرحبا", "привет")}
    assert len(made) == 6 and all(is_k8s_name(n) for n in made)
    assert target_name("数据库-01").startswith("01-")


@given(st.text(max_size=300))
@settings(max_examples=300, derandomize=True)
def test_any_name_becomes_a_kubernetes_name_a_limit_name_and_a_printable_line(name):
    assert is_k8s_name(k8s_name(name)) and len(target_name(name)) <= 56
    limit = limit_name("datastore", name)
    assert not set(PREFECT_BANNED) & set(limit) and len(limit) <= 240
    shown = printable(name)
    assert "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown


def test_a_datastore_named_with_vsphere_escapes_is_a_valid_limit_name():
    assert limit_name("datastore", "nfs%2fshare") != limit_name("datastore", "nfs-2fshare")
    assert not set(PREFECT_BANNED) & set(limit_name("datastore", "nfs%2fshare"))


def test_markdown_cells_show_text_as_written():
    assert markdown_cell("![x](http://evil) a|b") == "\\!\\[x\\]\\(http://evil\\) a\\|b"


@pytest.mark.parametrize(
    "given_,wanted", [(3, "w003"), ("3", "w003"), ("w003", "w003"), (" 12 ", "w012"), ("warm2", "warm2")]
)
def test_a_wave_is_named_by_number_or_id(given_, wanted):
    assert wave_id(given_) == wanted


@pytest.mark.parametrize("bad", ["²", "../../x", "", "W1", "a" * 33, "-x"])
def test_a_wave_id_is_never_path_like(bad):
    assert not is_wave_id(bad)
    with pytest.raises(ValueError):
        wave_id(bad)
