"""Capture: build or load the model, read the patterns, pass them through the model in one
traced forward pass per batch, and write what the selected layers output to the store.

The only stage that imports TensorFlow (on first use, through ``framework.keras_and_tf``).
"""
