"""The product's feature extractors; ``heads.load_extractors`` imports every module here.

- ``flow`` / ``flow_people`` (video): optical-flow statistics of a window, and
  with them how fast and how chaotically the people in view move.
- ``yolo_embedding`` (image, video): YOLOv3-tiny's pooled layer-12 activations.
- ``fire_colour`` / ``fire_scene`` (image, video): colour statistics and
  flicker for fire, alone and beside the YOLOv3-tiny embedding.
- ``yamnet_embedding`` (audio, video): YAMNet's 1024-d embedding, mean- and max-pooled.

Each reads the outputs of analyzers that already ran (``requires``) instead
of running a model a second time.
"""
