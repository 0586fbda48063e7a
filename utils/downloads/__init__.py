"""Fetch, verify and put in place what ``data/downloads.yaml`` lists (``install.sh``):
``fetch`` (HTTP and Google Drive), ``verify`` (md5, checkpoints, datasets, records),
``archive`` (safe extraction), ``install`` (one item end to end), ``cli`` (the command line)."""
