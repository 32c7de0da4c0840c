"""Every loader of a checkpoint refuses crafted and incomplete files with one clear line.

The loaders: ``evaluate``, ``viz`` (command and the helpers the notebooks use), ``train
ckpt_path=`` (resume) and ``train init_from=`` (fine-tuning). The crafted checkpoint reproduces
the attack of issue 10: its stored ``data`` config first calls
``hint_lightning.utils.io.write_text`` to write a module into the working directory, then names
a class of that module, whose import would run the payload.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from hint_lightning.compose import compose_train_config
from hint_lightning.evaluate import evaluate
from hint_lightning.train import train

PAYLOAD_MODULE = "pwn_payload"
VQA_INFO = {
    "answers": ["yes", "no"],
    "tokens": ["<pad>", "<unk>"],
    "feature_dim": 4,
    "max_proposals": 3,
}
CAPTION_INFO = {
    "vocab": ["<pad>", "<bos>", "<eos>", "<unk>", "dog"],
    "feature_dim": 4,
    "max_proposals": 3,
}


def attack_config() -> dict[str, Any]:
    """The stored run config of the attack: write a module into the cwd, then import it."""
    payload = (
        "from pathlib import Path\n"
        "Path('PWNED').write_text('payload ran')\n"
        "class Payload:\n"
        "    pass\n"
    )
    return {
        "task_name": "easyvqa_cp_updn",
        "data": {
            "_target_": "hint_lightning.data.easyvqa_datamodule.EasyVQACPDataModule",
            "_args_": [
                {
                    "_target_": "hint_lightning.utils.io.write_text",
                    "path": f"{PAYLOAD_MODULE}.py",
                    "text": payload,
                },
                {"_target_": f"{PAYLOAD_MODULE}.Payload"},
            ],
        },
        "model": {"_target_": "hint_lightning.modules.vqa_module.VQAModule"},
    }


def write_checkpoint(path: Path, config: dict[str, Any], info: dict[str, Any]) -> Path:
    torch.save({"state_dict": {}, "hint_lightning": {"config": config, "data_info": info}}, path)
    return path


def eval_config(ckpt: Path, out: Path) -> Any:
    return OmegaConf.create(
        {
            "ckpt_path": str(ckpt),
            "split": "test",
            "data": {},
            "trainer": {
                "_target_": "pytorch_lightning.Trainer",
                "default_root_dir": str(out),
                "accelerator": "cpu",
                "logger": False,
            },
        }
    )


def _evaluate(ckpt: Path, tmp: Path) -> Any:
    return evaluate(eval_config(ckpt, tmp / "eval"))


def _viz_command(ckpt: Path, tmp: Path) -> Any:
    from hint_lightning.viz.__main__ import main

    return main(["--base", str(ckpt), "--hinted", str(ckpt), "--output", str(tmp / "figures")])


def _viz_load_datamodule(ckpt: Path, tmp: Path) -> Any:
    from hint_lightning.viz.questions import load_datamodule

    return load_datamodule(str(ckpt))


def _viz_importance_for_questions(ckpt: Path, tmp: Path) -> Any:
    from hint_lightning.viz.questions import importance_for_questions

    return importance_for_questions(str(ckpt), [1])


def _viz_load_caption_datamodule(ckpt: Path, tmp: Path) -> Any:
    from hint_lightning.viz.captioning import load_caption_datamodule

    return load_caption_datamodule(str(ckpt))


def _train(*overrides: str) -> Callable[[Path, Path], Any]:
    def run(ckpt: Path, tmp: Path) -> Any:
        options = [*(o.format(ckpt=ckpt) for o in overrides), f"paths.data_dir={tmp / 'data'}"]
        return train(compose_train_config(options, output_dir=tmp / "run"))

    return run


LOADERS: dict[str, tuple[Callable[[Path, Path], Any], dict[str, Any]]] = {
    "evaluate": (_evaluate, VQA_INFO),
    "viz command": (_viz_command, VQA_INFO),
    "viz load_datamodule (notebook)": (_viz_load_datamodule, VQA_INFO),
    "viz importance_for_questions (notebook)": (_viz_importance_for_questions, VQA_INFO),
    "viz load_caption_datamodule": (_viz_load_caption_datamodule, CAPTION_INFO),
    "train ckpt_path=": (_train("experiment=easyvqa_cp_updn", "ckpt_path={ckpt}"), VQA_INFO),
    "train init_from=": (_train("experiment=easyvqa_cp_hint", "init_from={ckpt}"), VQA_INFO),
}


@pytest.fixture
def in_attack_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Work in ``tmp_path`` with it on ``sys.path``, as ``python -m`` puts the cwd there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop(PAYLOAD_MODULE, None)


@pytest.mark.parametrize("loader", list(LOADERS))
def test_the_write_then_import_attack_is_refused_and_writes_nothing(
    loader: str, in_attack_cwd: Path
) -> None:
    load, info = LOADERS[loader]
    ckpt = write_checkpoint(in_attack_cwd / "crafted.ckpt", attack_config(), info)
    with pytest.raises(Exception) as caught:
        load(ckpt, in_attack_cwd)
    assert not (in_attack_cwd / f"{PAYLOAD_MODULE}.py").exists(), "write_text ran"
    assert not (in_attack_cwd / "PWNED").exists(), "the payload ran"
    assert PAYLOAD_MODULE not in sys.modules
    message = str(caught.value)
    assert message == str(message).splitlines()[0]  # one line
    assert message.startswith(f"{ckpt}: refused target data._args_[0]._target_=")
    assert "'hint_lightning.utils.io.write_text'" in message


@pytest.mark.parametrize("loader", list(LOADERS))
def test_a_stored_interpolation_is_refused(
    loader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load, info = LOADERS[loader]
    monkeypatch.setenv("HINT_TEST_DATA_DIR", str(tmp_path / "data"))
    config = {
        "task_name": "easyvqa_cp_updn",
        "data": {
            "_target_": "hint_lightning.data.easyvqa_datamodule.EasyVQACPDataModule",
            "data_dir": "${oc.env:HINT_TEST_DATA_DIR}",
        },
        "model": {"_target_": "hint_lightning.modules.vqa_module.VQAModule"},
    }
    ckpt = write_checkpoint(tmp_path / "crafted.ckpt", config, info)
    with pytest.raises(ValueError, match=r"crafted.ckpt: refused interpolation data.data_dir="):
        load(ckpt, tmp_path)


@pytest.mark.parametrize("cut", ["empty", "truncated"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_an_incomplete_checkpoint_is_one_line_naming_the_file(
    loader: str, cut: str, tmp_path: Path
) -> None:
    load, info = LOADERS[loader]
    whole = write_checkpoint(tmp_path / "whole.ckpt", {"task_name": "x"}, info).read_bytes()
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"" if cut == "empty" else whole[: len(whole) // 2])
    with pytest.raises(ValueError) as caught:
        load(ckpt, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"checkpoint {ckpt} is incomplete (")
    assert "\n" not in message


def test_a_checkpoint_of_pickled_objects_is_refused(tmp_path: Path) -> None:
    from hint_lightning.checkpoints import CheckpointError, read_checkpoint

    ckpt = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "callback": Path("x")}, ckpt)
    with pytest.raises(CheckpointError, match="holds objects other than tensors"):
        read_checkpoint(ckpt)
