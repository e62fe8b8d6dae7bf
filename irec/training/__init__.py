"""Training: the resumable loop (``loop``: EMA, TensorBoard, DDP) and the runs that give the shipped models
(``runs``: data for each kind, ``train_model``, ``ship``)."""
