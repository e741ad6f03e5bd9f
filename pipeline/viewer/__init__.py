"""View: a run in the browser (local server, static report) and in TensorBoard; never imports
TensorFlow."""
