"""The bundled demo chain: sample images → resize → caption → save, plus a contact sheet.

```python
import chainlib as cl
from chainlib import samples
from chainlib.demo import build_demo_chain

chain = build_demo_chain(samples.folder(), "demo-out")
run = cl.Runner(chain, workers=2)
run.start()
run.wait()
```

``chainlib demo`` runs the same chain from the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._cache import cache_dir
from .chain import Chain

__all__ = ["CONTACT_SHEET", "build_demo_chain", "default_out"]


def default_out() -> Path:
    """Where ``chainlib demo`` writes when no ``--out`` is given: ``$CHAINLIB_DEMO_OUT`` if set,
    else ``demo-out`` in the user's cache folder (``~/.cache/chainlib/demo-out``), so that a demo
    run inside a checkout leaves nothing in it."""
    env = os.environ.get("CHAINLIB_DEMO_OUT")
    return Path(os.path.expanduser(env)) if env else cache_dir() / "demo-out"

CONTACT_SHEET = "contact_sheet.png"
"""The contact sheet's file name in the output folder."""


def build_demo_chain(
    samples_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, size: int = 256
) -> Chain:
    """The demo chain: every image in ``samples_dir`` (sub-folders included) resized to fit a
    ``size`` square, captioned with its file name, saved as PNG into ``out_dir`` (mirroring
    sub-folders), and a contact sheet of all of them saved as ``out_dir/contact_sheet.png``.

    Existing outputs are overwritten, so the demo can be run again into the same folder. Node ids:
    ``load_folder``, ``resize``, ``caption``, ``save``, ``contact_sheet``, ``save_sheet``.
    """
    samples = str(Path(os.path.expanduser(os.fspath(samples_dir))))
    out = str(Path(os.path.expanduser(os.fspath(out_dir))))
    chain = Chain("chainlib demo")
    src = chain.add("image.load_folder", id="load_folder", folder=samples, recursive=True)
    small = chain.add(
        "image.resize", id="resize", image=src["image"], width=size, height=size, mode="fit"
    )
    captioned = chain.add(
        "image.caption", id="caption", image=small, text=src["path"], size=max(8, size // 14)
    )
    chain.add(
        "image.save", id="save", image=captioned, folder=out, name=src["name"],
        subfolder=src["subfolder"], format="png", overwrite=True,
    )
    sheet = chain.add(
        "image.contact_sheet", id="contact_sheet", images=captioned, columns=5,
        thumb_size=min(size, 192),
    )
    chain.add(
        "image.save", id="save_sheet", image=sheet, folder=out,
        name=Path(CONTACT_SHEET).stem, format="png", overwrite=True,
    )
    return chain
