"""Detection (paper Table 7): Faster R-CNN with an FPN over a trunk of the zoo, on COCO-format data.

coco.py        COCO-format splits: read and checked whole, deterministic aspect-grouped batches
model.py       the trunk (stem + stages, frozen BN), its taps at strides 4..32, the detector
complexity.py  params and multiply-adds of a detector (task=profile)
evaluate.py    COCO AP with pycocotools
loop.py        the training loop: checkpoint, preemption, exact resume, DDP
synth.py       senet-detset: a small real detection set from the CIFAR-10 JPEG tree

Plain PyTorch and torchvision inside; ``senet_ablate/run/detect.py`` reads the Hydra config (task=detect).
"""
