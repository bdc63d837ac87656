"""Faces: detection, landmarks, alignment and face types, masks, identity embeddings."""
