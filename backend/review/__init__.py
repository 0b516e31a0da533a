"""The supervisor's review of completed work: policy, flags, the queue, decisions and redo requests."""
