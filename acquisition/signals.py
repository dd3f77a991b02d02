"""What acquisition announces to the apps above it, which it must not import.

Inference listens (inference.apps) and predicts a galaxy whose colour image was stored; the beat task
`inference.tasks.predict_missing` is the backstop for an announcement lost with a broker.
"""

from django.dispatch import Signal

# Sent after a new or changed colour image is stored; kwargs: galaxy_id, image_id.
color_image_stored = Signal()
