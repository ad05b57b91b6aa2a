"""Decoding, sampling, transforms, dataset formats, DataModules and SynthMotion."""
