"""The dataset card's configs: `load_dataset(OUTPUT)` must read the output rows, and nothing else,
whatever the output holds."""

from __future__ import annotations

import yaml

from jobs.dataset_card import card_text


def configs(manifest: dict) -> dict:
    front = card_text(manifest, "/data/out").split("---")[1]
    return {c["config_name"]: c for c in yaml.safe_load(front)["configs"]}


def test_default_config_lists_the_data_files_and_others_only_when_they_have_rows():
    found = configs({"name": "j", "files": [{"path": "data/part-0.parquet"}, {"path": "data/part-1.parquet"}],
                     "dead_letter_files": [{"path": "_dead_letter/part-0.parquet"}], "filtered_files": []})
    assert set(found) == {"default", "dead_letter"} and found["default"]["default"] is True
    assert found["default"]["data_files"] == [{"split": "train", "path": ["data/part-0.parquet",
                                                                          "data/part-1.parquet"]}]


def test_an_output_with_only_dead_letters_keeps_a_default_that_is_not_the_dead_letter():
    found = configs({"name": "j", "files": [], "dead_letter_files": [{"path": "_dead_letter/part-0.parquet"}]})
    assert found["default"]["default"] is True and found["default"]["data_files"][0]["path"] == "data/*.parquet"
    assert found["dead_letter"]["data_files"][0]["path"] == ["_dead_letter/part-0.parquet"]
