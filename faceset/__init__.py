"""A faceset as one thing: folders of aligned faces (ours and DFL's), packs, their metadata.

`Faceset.open(path)` is the entry point; `face_file` is the aligned-face codec; `sort_methods` are
the orderings of the `sort` command.
"""
