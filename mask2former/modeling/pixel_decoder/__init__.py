"""Pixel decoders (registered in ``PIXEL_DECODER_REGISTRY`` on import) and their builder."""

from mask2former.modeling.pixel_decoder.fpn import BasePixelDecoder, build_pixel_decoder
from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnPixelDecoder

__all__ = ["BasePixelDecoder", "MSDeformAttnPixelDecoder", "build_pixel_decoder"]
