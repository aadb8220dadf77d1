"""How a model is named on the command line: `ID`, `ID@REVISION`, `NAME=ID`, `NAME=ID@REVISION` (light module)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftscope.errors import SftscopeError


def looks_local(model_id: str) -> bool:
    """Hub ids are 'name' or 'org/name'; anything else (./x, /x, ~/x, a/b/c) is meant as a local path."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or Path(model_id).expanduser().exists()


@dataclass(frozen=True)
class ModelRef:
    """A model to load: `name` is its side label in every table (base, sft, dpo, ...)."""

    name: str
    id: str
    revision: str | None = None

    @staticmethod
    def parse(text: str, default_name: str) -> "ModelRef":
        """'ID', 'ID@REV', 'NAME=ID' or 'NAME=ID@REV' -> ModelRef. An existing local path is always a path, even
        when it holds '=' or '@' (an output folder `lr=1e-4/sft`).

        Raises:
            SftscopeError: empty parts, or a path-like text with '=' that does not exist (ambiguous).
        """
        text = str(text).strip()
        if text and Path(text).expanduser().exists():
            return ModelRef(name=default_name, id=text)
        name, sep, rest = text.partition("=")
        if not sep:
            name, rest = default_name, text
        elif looks_local(name) or "/" in name:
            raise SftscopeError(f"model {text!r} is neither an existing path nor NAME=ID (a name holds no '/'); "
                                f"if it is a folder, check the path; to name it write e.g. sft={text}")
        if rest and Path(rest).expanduser().exists():
            model_id, rev = rest, ""
        else:
            model_id, _, rev = rest.partition("@")
        if not name or not model_id:
            raise SftscopeError(f"cannot parse model {text!r}: use ID, ID@REVISION or NAME=ID")
        return ModelRef(name=name, id=model_id, revision=rev or None)

    def spec(self) -> str:
        """ID[@REVISION]: the text `parse` reads back (without the name)."""
        return self.id + (f"@{self.revision}" if self.revision else "")
