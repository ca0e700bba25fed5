"""MkDocs hook: the site mirrors the repository's layout, so every relative link written
for GitHub (`docs/ci.md` from README.md, `../docs/infrastructure.md` from
infra/README.md) resolves in the site as it does on GitHub, and strict mode checks it.

`docs_dir` stays `docs` (MkDocs forbids the folder holding mkdocs.yml), but its files
are served under `docs/`, and every other Markdown file the `nav` names (README.md, the
area READMEs) is added from the repository root: README.md becomes the home page, each
folder's README.md that folder's page. Walking the whole repository instead (a
`docs_dir` of `.`) would visit `target/`, tens of thousands of files, on every build.
"""

from __future__ import annotations

import os

from mkdocs.structure.files import File, Files


def _nav_paths(nav) -> list[str]:
    """Every page path named in the `nav`, in order."""
    out: list[str] = []
    if isinstance(nav, str):
        out.append(nav)
    elif isinstance(nav, dict):
        for value in nav.values():
            out.extend(_nav_paths(value))
    elif isinstance(nav, list):
        for item in nav:
            out.extend(_nav_paths(item))
    return out


def _root(config) -> str:
    return os.path.dirname(os.path.abspath(config.config_file_path))


def on_files(files: Files, config) -> Files:
    root = _root(config)
    docs_dir = os.path.abspath(config.docs_dir)
    prefix = os.path.relpath(docs_dir, root).replace(os.sep, "/")
    out: list[File] = []
    for f in files:
        if f.src_dir is not None and os.path.abspath(f.src_dir) == docs_dir:
            moved = File(f"{prefix}/{f.src_uri}", root, config.site_dir, config.use_directory_urls)
            moved.inclusion = f.inclusion
            out.append(moved)
        else:
            out.append(f)  # the theme's assets
    for path in _nav_paths(config.nav or []):
        if "://" in path or path.startswith(prefix + "/"):
            continue
        if not os.path.isfile(os.path.join(root, path)):
            continue  # MkDocs itself reports a nav entry that names no file
        out.append(File(path, root, config.site_dir, config.use_directory_urls))
    return Files(out)


def on_serve(server, config, builder):
    """`mkdocs serve` rebuilds when a README outside `docs_dir` changes, too."""
    root = _root(config)
    for path in _nav_paths(config.nav or []):
        full = os.path.join(root, path)
        if os.path.isfile(full):
            server.watch(full)
    return server
