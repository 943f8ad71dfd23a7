"""A small software renderer (numpy + OpenCV) for the demo clip: a skinned body in a room."""
