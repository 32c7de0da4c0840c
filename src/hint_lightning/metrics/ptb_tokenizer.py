"""Java for the coco-caption metrics, and coco-caption's PTB tokenizer run from a temporary folder.

:func:`require_java` checks for Java with a clear message before pycocoevalcap would fail
obscurely. :func:`ptb_tokenize` tokenizes like coco-caption's ``PTBTokenizer`` (Stanford CoreNLP
3.4.1, ``-preserveLines -lowerCase``, punctuation tokens removed), with two differences that
change no score it computes correctly: every line terminator of Java's tokenizer becomes a
space (the official code handles only ``"\\n"`` and would shift later captions onto the wrong
image), and the captions' temporary file is written to a folder of ours instead of the
installed package (so scoring works from a read-only install).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from pycocoevalcap.tokenizer import ptbtokenizer
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

from hint_lightning.metrics.caption_inputs import JAVA_LINE_BREAKS, K, check_text

__all__ = ["JavaNotFoundError", "one_line", "ptb_tokenize", "require_java", "run_ptb_tokenizer"]

_JAVA_HELP: Final[str] = (
    "The coco-caption metrics need a Java runtime (the PTB tokenizer, METEOR and SPICE are Java "
    "programs run by pycocoevalcap): {reason}. Install one with `make java` (in the "
    "hint-lightning repository) or `sudo apt-get install default-jre-headless` (Debian/Ubuntu), "
    "and make sure `java` is on PATH. Without Java, score_tokenized() computes BLEU, ROUGE-L and "
    "CIDEr of already tokenized captions."
)
_JAVA_VERSION_TIMEOUT_S: Final[float] = 60.0
_JAR: Final = Path(ptbtokenizer.__file__).resolve().parent / STANFORD_CORENLP_3_4_1_JAR
"""The Stanford CoreNLP 3.4.1 jar that ships with pycocoevalcap (only read)."""
_TOKENIZER_CLASS: Final = "edu.stanford.nlp.process.PTBTokenizer"
_TOKENIZER_OPTIONS: Final[tuple[str, ...]] = ("-preserveLines", "-lowerCase")


class JavaNotFoundError(RuntimeError):
    """No usable Java runtime: the tokenizer, METEOR and SPICE cannot run."""


def require_java() -> str:
    """Check that a working ``java`` is on PATH (pycocoevalcap runs ``java`` from PATH).

    Returns:
        The path of the ``java`` executable.

    Raises:
        JavaNotFoundError: if there is no ``java`` on PATH or ``java -version`` fails; the
            message says how to install Java.
    """
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(_JAVA_HELP.format(reason="no `java` executable on PATH"))
    try:
        completed = subprocess.run(
            [java, "-version"], capture_output=True, timeout=_JAVA_VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise JavaNotFoundError(
            _JAVA_HELP.format(reason=f"`{java} -version` failed ({err})")
        ) from err
    if completed.returncode != 0:
        output = completed.stderr.decode(errors="replace").strip()[-500:]
        reason = f"`{java} -version` exited with status {completed.returncode}: {output}"
        raise JavaNotFoundError(_JAVA_HELP.format(reason=reason))
    return java


def one_line(caption: str) -> str:
    """Replace every line terminator of Java's tokenizer by a space."""
    for brk in JAVA_LINE_BREAKS:
        caption = caption.replace(brk, " ")
    return caption


def _check_tokenized(captions: Mapping[K, Sequence[str]], tokenized: Mapping[K, list[str]]) -> None:
    """Raise if the tokenizer did not return one line per input caption."""
    for image_id, texts in captions.items():
        returned = len(tokenized.get(image_id, []))
        if returned != len(texts):
            raise RuntimeError(
                f"PTBTokenizer returned {returned} captions for image {image_id!r} instead of "
                f"{len(texts)}; its output is misaligned (a caption with an unusual line break?)"
            )


def ptb_tokenize(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """Tokenize captions with coco-caption's PTBTokenizer (Stanford CoreNLP 3.4.1, Java).

    Lower-cases, splits off punctuation and removes the punctuation tokens, exactly as
    ``COCOEvalCap`` does before scoring (line breaks become spaces first).

    Args:
        captions: image id -> raw captions (strings).

    Returns:
        image id -> tokenized captions (space-separated tokens), same keys, same counts.

    Raises:
        JavaNotFoundError: if Java is missing.
        TypeError: if a caption is not a str.
        RuntimeError: if the tokenizer's output does not match its input.
    """
    checked: dict[K, list[str]] = {}
    for image_id, texts in captions.items():
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(f"the captions of image {image_id!r} must be a sequence of str")
        what = f"caption {{}} of image {image_id!r}"
        checked[image_id] = [check_text(t, what.format(i)) for i, t in enumerate(texts)]
    require_java()
    return run_ptb_tokenizer(checked)


def run_ptb_tokenizer(captions: Mapping[K, Sequence[str]]) -> dict[K, list[str]]:
    """:func:`ptb_tokenize` of validated captions, Java already checked.

    Runs the command of pycocoevalcap's ``PTBTokenizer.tokenize`` (its jar, class, options and
    punctuation list), but with the captions' file in a temporary folder of ours: pycocoevalcap
    writes it next to its jar, inside the installed package, which fails on a read-only
    install. The file is UTF-8 and the output is read as UTF-8, as there.
    """
    if not any(captions.values()):
        return {image_id: [] for image_id in captions}
    keys = [key for key, texts in captions.items() for _ in texts]
    lines = [one_line(text) for texts in captions.values() for text in texts]
    with tempfile.TemporaryDirectory(prefix="hint_lightning_ptb_") as folder:
        source = Path(folder) / "captions.txt"
        source.write_bytes("\n".join(lines).encode())
        command = ["java", "-cp", str(_JAR), _TOKENIZER_CLASS, *_TOKENIZER_OPTIONS, str(source)]
        completed = subprocess.run(command, cwd=folder, capture_output=True, check=False)
    if completed.returncode != 0:
        stderr = completed.stderr.decode(errors="replace").strip()[-1000:]
        raise RuntimeError(
            f"PTBTokenizer (Java) exited with status {completed.returncode}: {stderr!r}"
        )
    tokenized: dict[K, list[str]] = {}
    for key, line in zip(keys, completed.stdout.decode().split("\n"), strict=False):
        words = [word for word in line.rstrip().split(" ") if word not in PUNCTUATIONS]
        tokenized.setdefault(key, []).append(" ".join(words))
    _check_tokenized(captions, tokenized)
    return {image_id: tokenized.get(image_id, []) for image_id in captions}
