"""The inpainting page behind `python -m model.serve` (`tritonsplat_inpaint.commands.serve`),
by job:

- `words`: `PageError`, the library's refusals (`tritonsplat_inpaint.errors`) mapped to the
  page's messages by their type, and the inference path's notes in plain words;
- `uploads`: the uploaded files on disk for the library to read, the size limit, and
  `read_upload` / `read_upload_mask` (opening a photograph, loading a mask file);
- `fill`: `fill_upload`, one fill through the inference path of `python -m model.inpaint`
  (the network or a classical method), its `Result`, and `Models` (the checkpoint, loaded once);
- `overlay`: which Gaussians rendered a fill, where they lie in the photograph, the
  picture drawing them, and the PNG / data-URL encodings;
- `examples`: the photographs one click away;
- `app`: the ASGI application (the page, its files, the JSON API).

The command line (arguments, listening socket, server) stays in `commands/serve.py`.
"""
