"""Weight resolution: our Hub mirror, the authors' original URLs, local files and published folders.

One module per job: :mod:`~zoo.hub.sources` walks an entry's sources, :mod:`~zoo.hub.hf` talks to the
Hub, :mod:`~zoo.hub.http` downloads plain URLs, :mod:`~zoo.hub.cache` lays out the cache,
:mod:`~zoo.hub.provenance` keeps the hashes zoo recorded, :mod:`~zoo.hub.folder` reads published
folders, and :mod:`~zoo.hub.trust` is the trust policy: what is verified and what is recorded.

Offline (``HF_HUB_OFFLINE=1`` or ``ZOO_OFFLINE=1``) nothing touches the network; a missing file is one
:class:`WeightsUnavailableError` that says what was tried and how to provide the weights.
"""

from zoo.hub.cache import PACKAGE_DIR, hub_cache_dir, sha256_of, zoo_cache_dir
from zoo.hub.errors import (
    ChecksumError,
    DownloadError,
    IncompleteDownloadError,
    ProvenanceError,
    StalledDownloadError,
    UnsafeFolderError,
    UntrustedRedirectError,
    UnverifiedWeightsWarning,
    WeightsUnavailableError,
)
from zoo.hub.folder import folder_entry, load_folder, read_folder_config
from zoo.hub.hf import HF_HUB_PREFIX, hub_folder
from zoo.hub.http import StallGuard, download_url
from zoo.hub.offline import is_offline
from zoo.hub.sources import describe_source, download, resolve

__all__ = [
    "HF_HUB_PREFIX",
    "PACKAGE_DIR",
    "ChecksumError",
    "DownloadError",
    "IncompleteDownloadError",
    "ProvenanceError",
    "StallGuard",
    "StalledDownloadError",
    "UnsafeFolderError",
    "UntrustedRedirectError",
    "UnverifiedWeightsWarning",
    "WeightsUnavailableError",
    "describe_source",
    "download",
    "download_url",
    "folder_entry",
    "hub_cache_dir",
    "hub_folder",
    "is_offline",
    "load_folder",
    "read_folder_config",
    "resolve",
    "sha256_of",
    "zoo_cache_dir",
]
