"""voxray: explain speaker-recognition models at corpus scale on Ray.

Layers: ``corpus`` (VoxCeleb layouts, lists, demo synthesis), ``features`` (Kaldi fbank/MFCC),
``models`` (ECAPA-TDNN, ResNet34SE, BiLSTM, AlexNet, margin heads), ``attribution`` (Captum
methods, CAMs, LRP), ``mask`` (attribution masking and augmentation), ``train`` (Ray Train,
Ray Tune), ``eval`` (verification metrics, clustering scorers, faithfulness), ``report``,
and ``pipeline`` (the Ray Data stages and job functions the CLI and ray_jobs/ call).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
