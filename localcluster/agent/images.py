"""The test-only map from image reference to a local folder that stands in for its files.

Nothing is pulled: a container's command runs from the host. When a test needs an image's
*files* (an init container copying migrations out of an image, an image volume), it declares
the image here. Two sources, merged, the file winning:

- ``LOCALCLUSTER_IMAGE_ROOTS``: a JSON object ``{"ref": "/folder"}`` or the path of such a file;
- ``<cluster dir>/image-roots.json``, written by ``LocalCluster.add_image`` and re-read at
  each container start, so a running cluster learns new images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from localcluster import config


def _parse(raw: str) -> dict[str, str]:
    text = raw.strip()
    if not text:
        return {}
    if not text.startswith("{"):
        text = Path(text).read_text()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{config.IMAGE_ROOTS_ENV} must be a JSON object of image -> folder")
    return {str(key): str(value) for key, value in data.items()}


class ImageRoots:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mapping(self) -> dict[str, str]:
        merged = _parse(os.environ.get(config.IMAGE_ROOTS_ENV, ""))
        if self.path.is_file():
            merged.update(_parse(self.path.read_text()))
        return merged

    def folder_for(self, image: str | None) -> str | None:
        if not image:
            return None
        found = self.mapping().get(image)
        return str(Path(found).resolve()) if found else None

    def add(self, image: str, folder: Path) -> None:
        current = json.loads(self.path.read_text()) if self.path.is_file() else {}
        current[image] = str(folder.resolve())
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(current, indent=2))
        temporary.replace(self.path)
