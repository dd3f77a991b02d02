"""What labeling announces to the apps above it, which it must not import."""

from django.dispatch import Signal

# Sent after new consensus labels are committed (inference counts them toward retraining); no kwargs.
consensus_labels_added = Signal()
