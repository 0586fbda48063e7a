"""Low-level input and output: image decoding, the atomic writer, file listing, checkpoint
files and the download manifest."""
