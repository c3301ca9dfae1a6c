"""Bad config files and overrides (issue 12, item 1): real files, errors that name the culprit."""

from __future__ import annotations

import pytest
import yaml

from mask2former.config import ConfigError, ConfigKeyError, UnsafeConfigTagError, get_cfg


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_config.yaml"):
        get_cfg().merge_from_file(str(tmp_path / "no_such_config.yaml"))


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("MODEL:\n  META_ARCHITECTURE: MaskFormer\n  WEIGHTS: [unclosed\nSEED: 1\n")
    with pytest.raises(ConfigError) as err:
        get_cfg().merge_from_file(str(path))
    message = str(err.value)
    assert str(path) in message and "invalid YAML" in message
    assert "starts at line 3" in message


def test_bad_indentation_names_the_line(tmp_path):
    path = tmp_path / "indent.yaml"
    path.write_text("SOLVER:\n  BASE_LR: 0.1\n   MAX_ITER: 5\n")
    with pytest.raises(ConfigError, match=r"indent.yaml, line 3"):
        get_cfg().merge_from_file(str(path))


def test_missing_base_file_names_both_files(tmp_path):
    path = tmp_path / "child.yaml"
    path.write_text("_BASE_: ../Base-missing.yaml\nSEED: 3\n")
    with pytest.raises(FileNotFoundError) as err:
        get_cfg().merge_from_file(str(path))
    message = str(err.value)
    assert str(path) in message and "Base-missing.yaml" in message
    assert str(tmp_path.parent / "Base-missing.yaml") in message


def test_unknown_key_in_a_file_suggests_the_close_key(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("MODEL:\n  MASK_FORMER:\n    NUM_OBJECT_QUERYS: 50\n")
    with pytest.raises(ConfigKeyError) as err:
        get_cfg().merge_from_file(str(path))
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert "'MODEL.MASK_FORMER.NUM_OBJECT_QUERYS' does not exist" in message
    assert "Did you mean MODEL.MASK_FORMER.NUM_OBJECT_QUERIES" in message


def test_unknown_key_on_the_command_line_suggests_the_close_key():
    with pytest.raises(ConfigKeyError, match="Did you mean SOLVER.BASE_LR"):
        get_cfg().merge_from_list(["SOLVER.BASE_LRR", "0.1"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("SOLVER:\n  BASE_LR: fast\n", "BASE_LR expects a float (default: 0.0001); got 'fast'"),
        ("SOLVER:\n  MAX_ITER: 1.5\n", "SOLVER.MAX_ITER expects an int"),
        ("MODEL:\n  MASK_FORMER: 3\n", "MODEL.MASK_FORMER is a section with keys"),
    ],
)
def test_wrong_value_type_names_the_key(tmp_path, content, words):
    path = tmp_path / "types.yaml"
    path.write_text(content)
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.0001
    with pytest.raises(ConfigError) as err:
        cfg.merge_from_file(str(path))
    assert words in str(err.value)


def test_wrong_value_type_on_the_command_line_names_the_key():
    with pytest.raises(ConfigError, match="SOLVER.MAX_ITER expects an int"):
        get_cfg().merge_from_list(["SOLVER.MAX_ITER", "many"])


def test_python_tags_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "code.yaml"
    path.write_text(f'SEED: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UnsafeConfigTagError) as err:
        get_cfg().merge_from_file(str(path))
    assert isinstance(err.value, yaml.constructor.ConstructorError)
    assert str(path) in str(err.value) and "line 1" in str(err.value)
    assert not marker.exists()
