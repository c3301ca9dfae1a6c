"""Segmentation heads (registered in ``SEM_SEG_HEADS_REGISTRY`` on import)."""

from mask2former.modeling.heads.mask_former_head import MaskFormerHead, build_sem_seg_head

__all__ = ["MaskFormerHead", "build_sem_seg_head"]
