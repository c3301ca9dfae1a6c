"""Default configuration: every key the original Mask2Former YAML files can set.

The tree is the union of three layers, applied in the same order as the original
``train_net.py`` does, so that the original YAML files load unchanged and unset keys keep
the values the original code saw:

1. detectron2's defaults (``detectron2/config/defaults.py``), all keys, same values;
2. the DeepLab project additions (``add_deeplab_config``: poly LR, ResNet stem type and
   multi-grid, ...);
3. the Mask2Former additions (``add_maskformer2_config``: ``MODEL.MASK_FORMER``,
   ``MODEL.SWIN``, pixel-decoder and LSJ keys, ...).

Many detectron2 keys (RPN, ROI heads, RetinaNet, ...) are not read by this project; they
exist only so that any detectron2-style YAML file merges without a "non-existent key" error.
"""

from mask2former.config.config import CfgNode as CN

_C = CN()

# Config format version of detectron2 (the original YAML files set VERSION: 2).
_C.VERSION = 2

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.LOAD_PROPOSALS = False
_C.MODEL.MASK_ON = False
_C.MODEL.KEYPOINT_ON = False
_C.MODEL.DEVICE = "cuda"
_C.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
# Path or URL of the weights to load before training / for evaluation.
_C.MODEL.WEIGHTS = ""
# Per-channel mean and std, in the channel order given by INPUT.FORMAT, in 0-255 units.
_C.MODEL.PIXEL_MEAN = [103.530, 116.280, 123.675]
_C.MODEL.PIXEL_STD = [1.0, 1.0, 1.0]

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
# Number of leading stages whose parameters are frozen (0: none; 1: stem; 2: stem + res2 ...).
_C.MODEL.BACKBONE.FREEZE_AT = 2

_C.MODEL.FPN = CN()
_C.MODEL.FPN.IN_FEATURES = []
_C.MODEL.FPN.OUT_CHANNELS = 256
_C.MODEL.FPN.NORM = ""
_C.MODEL.FPN.FUSE_TYPE = "sum"

_C.MODEL.PROPOSAL_GENERATOR = CN()
_C.MODEL.PROPOSAL_GENERATOR.NAME = "RPN"
_C.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 0

_C.MODEL.ANCHOR_GENERATOR = CN()
_C.MODEL.ANCHOR_GENERATOR.NAME = "DefaultAnchorGenerator"
_C.MODEL.ANCHOR_GENERATOR.SIZES = [[32, 64, 128, 256, 512]]
_C.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
_C.MODEL.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90]]
_C.MODEL.ANCHOR_GENERATOR.OFFSET = 0.0

_C.MODEL.RPN = CN()
_C.MODEL.RPN.HEAD_NAME = "StandardRPNHead"
_C.MODEL.RPN.IN_FEATURES = ["res4"]
_C.MODEL.RPN.BOUNDARY_THRESH = -1
_C.MODEL.RPN.IOU_THRESHOLDS = [0.3, 0.7]
_C.MODEL.RPN.IOU_LABELS = [0, -1, 1]
_C.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 256
_C.MODEL.RPN.POSITIVE_FRACTION = 0.5
_C.MODEL.RPN.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = 1.0
_C.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
_C.MODEL.RPN.SMOOTH_L1_BETA = 0.0
_C.MODEL.RPN.LOSS_WEIGHT = 1.0
_C.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 12000
_C.MODEL.RPN.PRE_NMS_TOPK_TEST = 6000
_C.MODEL.RPN.POST_NMS_TOPK_TRAIN = 2000
_C.MODEL.RPN.POST_NMS_TOPK_TEST = 1000
_C.MODEL.RPN.NMS_THRESH = 0.7
_C.MODEL.RPN.CONV_DIMS = [-1]

_C.MODEL.ROI_HEADS = CN()
_C.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
_C.MODEL.ROI_HEADS.NUM_CLASSES = 80
_C.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]
_C.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.5]
_C.MODEL.ROI_HEADS.IOU_LABELS = [0, 1]
_C.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 512
_C.MODEL.ROI_HEADS.POSITIVE_FRACTION = 0.25
_C.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
_C.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.5
_C.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = True

_C.MODEL.ROI_BOX_HEAD = CN()
_C.MODEL.ROI_BOX_HEAD.NAME = ""
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 1.0
_C.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_C.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA = 0.0
_C.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
_C.MODEL.ROI_BOX_HEAD.NUM_FC = 0
_C.MODEL.ROI_BOX_HEAD.FC_DIM = 1024
_C.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
_C.MODEL.ROI_BOX_HEAD.CONV_DIM = 256
_C.MODEL.ROI_BOX_HEAD.NORM = ""
_C.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
_C.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = False
_C.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = False
_C.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = False
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER = 0.5
_C.MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES = 50

_C.MODEL.ROI_BOX_CASCADE_HEAD = CN()
_C.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS = (
    (10.0, 10.0, 5.0, 5.0),
    (20.0, 20.0, 10.0, 10.0),
    (30.0, 30.0, 15.0, 15.0),
)
_C.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.5, 0.6, 0.7)

_C.MODEL.ROI_MASK_HEAD = CN()
_C.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
_C.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_MASK_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_MASK_HEAD.NUM_CONV = 0
_C.MODEL.ROI_MASK_HEAD.CONV_DIM = 256
_C.MODEL.ROI_MASK_HEAD.NORM = ""
_C.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = False
_C.MODEL.ROI_MASK_HEAD.POOLER_TYPE = "ROIAlignV2"

_C.MODEL.ROI_KEYPOINT_HEAD = CN()
_C.MODEL.ROI_KEYPOINT_HEAD.NAME = "KRCNNConvDeconvUpsampleHead"
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION = 14
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_SAMPLING_RATIO = 0
_C.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (512,) * 8
_C.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 17
_C.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE = 1
_C.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = True
_C.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT = 1.0
_C.MODEL.ROI_KEYPOINT_HEAD.POOLER_TYPE = "ROIAlignV2"

# Segmentation head. Mask2Former reuses this node for its MaskFormerHead + pixel decoder.
_C.MODEL.SEM_SEG_HEAD = CN()
_C.MODEL.SEM_SEG_HEAD.NAME = "SemSegFPNHead"
_C.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2", "p3", "p4", "p5"]
# Label value that is excluded from the losses and metrics.
_C.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
_C.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 54
# Channel width of the pixel decoder's convolutions.
_C.MODEL.SEM_SEG_HEAD.CONVS_DIM = 128
# Stride (w.r.t. the input image) of the mask features the head outputs.
_C.MODEL.SEM_SEG_HEAD.COMMON_STRIDE = 4
_C.MODEL.SEM_SEG_HEAD.NORM = "GN"
_C.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 1.0
# DeepLab additions (unused by Mask2Former, kept for YAML compatibility).
_C.MODEL.SEM_SEG_HEAD.LOSS_TYPE = "hard_pixel_mining"
_C.MODEL.SEM_SEG_HEAD.PROJECT_FEATURES = ["res2"]
_C.MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS = [48]
_C.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS = 256
_C.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18]
_C.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.1
_C.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV = False
# Mask2Former additions.
# Channels of the per-pixel embedding that query embeddings are dotted with.
_C.MODEL.SEM_SEG_HEAD.MASK_DIM = 256
# Encoder layers inside the pixel decoder (0: none).
_C.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = 0
_C.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
# Backbone levels fed to the multi-scale deformable attention encoder, and its shape.
_C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
_C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_POINTS = 4
_C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_N_HEADS = 8
# Not in the original (which hard-codes 1024): hidden size of the deformable encoder's FFN.
# The default keeps the original models unchanged; small models can shrink it.
_C.MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD = 1024

_C.MODEL.PANOPTIC_FPN = CN()
_C.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT = 1.0
_C.MODEL.PANOPTIC_FPN.COMBINE = CN({"ENABLED": True})
_C.MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH = 0.5
_C.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 4096
_C.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.5

_C.MODEL.RETINANET = CN()
_C.MODEL.RETINANET.NUM_CLASSES = 80
_C.MODEL.RETINANET.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
_C.MODEL.RETINANET.NUM_CONVS = 4
_C.MODEL.RETINANET.IOU_THRESHOLDS = [0.4, 0.5]
_C.MODEL.RETINANET.IOU_LABELS = [0, -1, 1]
_C.MODEL.RETINANET.PRIOR_PROB = 0.01
_C.MODEL.RETINANET.SCORE_THRESH_TEST = 0.05
_C.MODEL.RETINANET.TOPK_CANDIDATES_TEST = 1000
_C.MODEL.RETINANET.NMS_THRESH_TEST = 0.5
_C.MODEL.RETINANET.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
_C.MODEL.RETINANET.FOCAL_LOSS_GAMMA = 2.0
_C.MODEL.RETINANET.FOCAL_LOSS_ALPHA = 0.25
_C.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA = 0.1
_C.MODEL.RETINANET.BBOX_REG_LOSS_TYPE = "smooth_l1"
_C.MODEL.RETINANET.NORM = ""

_C.MODEL.RESNETS = CN()
# One of 18, 34, 50, 101, 152.
_C.MODEL.RESNETS.DEPTH = 50
_C.MODEL.RESNETS.OUT_FEATURES = ["res4"]
# 1 gives ResNet, > 1 gives ResNeXt.
_C.MODEL.RESNETS.NUM_GROUPS = 1
# "FrozenBN", "BN", "SyncBN", "GN" or "" (no norm).
_C.MODEL.RESNETS.NORM = "FrozenBN"
_C.MODEL.RESNETS.WIDTH_PER_GROUP = 64
# True (MSRA/Caffe2 weights): stride 2 sits on the 1x1 conv of a bottleneck; False
# (torchvision weights): on the 3x3 conv.
_C.MODEL.RESNETS.STRIDE_IN_1X1 = True
_C.MODEL.RESNETS.RES5_DILATION = 1
# Output channels of res2; later stages double it. Must be 64 for depths 18 and 34.
_C.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
_C.MODEL.RESNETS.STEM_OUT_CHANNELS = 64
_C.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, False, False]
_C.MODEL.RESNETS.DEFORM_MODULATED = False
_C.MODEL.RESNETS.DEFORM_NUM_GROUPS = 1
# DeepLab additions. RES5_MULTI_GRID multiplies RES5_DILATION per block of res5;
# STEM_TYPE "basic" is one 7x7 conv, "deeplab" is three 3x3 convs.
_C.MODEL.RESNETS.RES4_DILATION = 1
_C.MODEL.RESNETS.RES5_MULTI_GRID = [1, 2, 4]
_C.MODEL.RESNETS.STEM_TYPE = "deeplab"

# Mask2Former: meta-architecture, criterion and transformer decoder.
_C.MODEL.MASK_FORMER = CN()
# Losses on the output of every decoder layer, not just the last one.
_C.MODEL.MASK_FORMER.DEEP_SUPERVISION = True
# Classification weight of the "no object" class.
_C.MODEL.MASK_FORMER.NO_OBJECT_WEIGHT = 0.1
_C.MODEL.MASK_FORMER.CLASS_WEIGHT = 1.0
_C.MODEL.MASK_FORMER.DICE_WEIGHT = 1.0
# Weight of the sigmoid binary cross-entropy mask loss.
_C.MODEL.MASK_FORMER.MASK_WEIGHT = 20.0
_C.MODEL.MASK_FORMER.NHEADS = 8
_C.MODEL.MASK_FORMER.DROPOUT = 0.1
_C.MODEL.MASK_FORMER.DIM_FEEDFORWARD = 2048
_C.MODEL.MASK_FORMER.ENC_LAYERS = 0
# Number of decoder layers plus one: the extra prediction comes from the learnable queries
# before the first layer (so 10 means 9 layers).
_C.MODEL.MASK_FORMER.DEC_LAYERS = 6
_C.MODEL.MASK_FORMER.PRE_NORM = False
_C.MODEL.MASK_FORMER.HIDDEN_DIM = 256
_C.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 100
# Which feature the transformer decoder reads; "multi_scale_pixel_decoder" means the pixel
# decoder's multi-scale outputs.
_C.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "res5"
# Add a 1x1 input projection even when channel counts already match.
_C.MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ = False
# Pad inputs to a multiple of this; overrides a backbone that reports 0.
_C.MODEL.MASK_FORMER.SIZE_DIVISIBILITY = 32
_C.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"
# Point-sampled mask losses (PointRend style): points per mask, oversampling factor k and
# the share beta of points picked by uncertainty.
_C.MODEL.MASK_FORMER.TRAIN_NUM_POINTS = 112 * 112
_C.MODEL.MASK_FORMER.OVERSAMPLE_RATIO = 3.0
_C.MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO = 0.75

_C.MODEL.MASK_FORMER.TEST = CN()
_C.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True
_C.MODEL.MASK_FORMER.TEST.INSTANCE_ON = False
_C.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = False
# Panoptic inference: drop queries scoring below this, and segments whose visible part is
# below this fraction of their full mask.
_C.MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD = 0.0
_C.MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD = 0.0
# Upsample mask logits to the output size before (True) or after (False) combining them.
_C.MODEL.MASK_FORMER.TEST.SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE = False

# Swin Transformer backbone (D2SwinTransformer).
_C.MODEL.SWIN = CN()
# Image size of the pretraining; sets the absolute position embedding size when APE is on.
_C.MODEL.SWIN.PRETRAIN_IMG_SIZE = 224
_C.MODEL.SWIN.PATCH_SIZE = 4
_C.MODEL.SWIN.EMBED_DIM = 96
_C.MODEL.SWIN.DEPTHS = [2, 2, 6, 2]
_C.MODEL.SWIN.NUM_HEADS = [3, 6, 12, 24]
_C.MODEL.SWIN.WINDOW_SIZE = 7
_C.MODEL.SWIN.MLP_RATIO = 4.0
_C.MODEL.SWIN.QKV_BIAS = True
# None: scale attention logits by head_dim ** -0.5.
_C.MODEL.SWIN.QK_SCALE = None
_C.MODEL.SWIN.DROP_RATE = 0.0
_C.MODEL.SWIN.ATTN_DROP_RATE = 0.0
# Stochastic depth rate, increased linearly over blocks up to this value.
_C.MODEL.SWIN.DROP_PATH_RATE = 0.3
# Absolute position embedding on/off.
_C.MODEL.SWIN.APE = False
_C.MODEL.SWIN.PATCH_NORM = True
_C.MODEL.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
# Gradient checkpointing of Swin blocks (saves memory, costs compute).
_C.MODEL.SWIN.USE_CHECKPOINT = False

# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------
_C.INPUT = CN()
# Shorter-side sizes for training resize; with SAMPLING "choice" one is picked per image,
# with "range" a size is drawn between the two values.
_C.INPUT.MIN_SIZE_TRAIN = (800,)
_C.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
_C.INPUT.MAX_SIZE_TRAIN = 1333
# 0 disables the test-time resize.
_C.INPUT.MIN_SIZE_TEST = 800
_C.INPUT.MAX_SIZE_TEST = 1333
_C.INPUT.RANDOM_FLIP = "horizontal"
_C.INPUT.CROP = CN({"ENABLED": False})
# "relative_range", "relative", "absolute" or "absolute_range"; SIZE is read accordingly.
_C.INPUT.CROP.TYPE = "relative_range"
_C.INPUT.CROP.SIZE = [0.9, 0.9]
# Re-draw a crop (a few times) while one category covers more than this share of it.
_C.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
# Channel order the model expects: "BGR" or "RGB".
_C.INPUT.FORMAT = "BGR"
_C.INPUT.MASK_FORMAT = "polygon"
# Mask2Former additions.
# Which dataset mapper turns records into training inputs.
_C.INPUT.DATASET_MAPPER_NAME = "mask_former_semantic"
# SSD-style photometric distortion.
_C.INPUT.COLOR_AUG_SSD = False
# Pad image and target in the mapper to this size (-1: no padding).
_C.INPUT.SIZE_DIVISIBILITY = -1
# Large-scale jitter: output square side and the random scale range.
_C.INPUT.IMAGE_SIZE = 1024
_C.INPUT.MIN_SCALE = 0.1
_C.INPUT.MAX_SCALE = 2.0

# ---------------------------------------------------------------------------------------------
# Datasets and data loader
# ---------------------------------------------------------------------------------------------
_C.DATASETS = CN()
# Registered dataset names (see mask2former.data).
_C.DATASETS.TRAIN = ()
_C.DATASETS.PROPOSAL_FILES_TRAIN = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN = 2000
_C.DATASETS.TEST = ()
_C.DATASETS.PROPOSAL_FILES_TEST = ()
_C.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST = 1000
# Not in the original: datasets described in the config, registered by train_net before the
# loaders are built; a list of {name, format, image_root, ...} mappings (see
# mask2former.data.datasets.custom_config and docs/custom_datasets.md).
_C.DATASETS.CUSTOM = []

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Batch images of similar aspect ratio (all wider or all taller) together.
_C.DATALOADER.ASPECT_RATIO_GROUPING = True
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
_C.DATALOADER.REPEAT_THRESHOLD = 0.0
_C.DATALOADER.REPEAT_SQRT = True
_C.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True

# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.BASE_LR = 0.001
_C.SOLVER.BASE_LR_END = 0.0
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 0.0001
# Weight decay of normalisation-layer parameters.
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = (30000,)
_C.SOLVER.NUM_DECAYS = 3
_C.SOLVER.WARMUP_FACTOR = 1.0 / 1000
_C.SOLVER.WARMUP_ITERS = 1000
_C.SOLVER.WARMUP_METHOD = "linear"
_C.SOLVER.RESCALE_INTERVAL = False
_C.SOLVER.CHECKPOINT_PERIOD = 5000
# Not in the original: keep only the newest N periodic checkpoints (0 keeps all, as the
# original); model_final.pth and the one last_checkpoint names are never deleted.
_C.SOLVER.CHECKPOINT_MAX_KEEP = 0
# Total batch size over all workers.
_C.SOLVER.IMS_PER_BATCH = 16
# Non-zero: rescale batch size, LR and schedule from this world size to the actual one.
_C.SOLVER.REFERENCE_WORLD_SIZE = 0
_C.SOLVER.BIAS_LR_FACTOR = 1.0
# None: biases use WEIGHT_DECAY.
_C.SOLVER.WEIGHT_DECAY_BIAS = None
_C.SOLVER.CLIP_GRADIENTS = CN({"ENABLED": False})
# "value", "norm" (per parameter) or "full_model" (one norm over all parameters).
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
# Automatic mixed precision.
_C.SOLVER.AMP = CN({"ENABLED": False})
# DeepLab additions: LR = base * (1 - iter / max_iter) ** POWER (+ CONSTANT_ENDING floor).
_C.SOLVER.POLY_LR_POWER = 0.9
_C.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
# Mask2Former additions.
# Weight decay of query / level embeddings.
_C.SOLVER.WEIGHT_DECAY_EMBED = 0.0
# "SGD" or "ADAMW".
_C.SOLVER.OPTIMIZER = "ADAMW"
# LR multiplier of backbone parameters.
_C.SOLVER.BACKBONE_MULTIPLIER = 0.1

# ---------------------------------------------------------------------------------------------
# Test
# ---------------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.EXPECTED_RESULTS = []
# Evaluate every this many iterations during training (0: only at the end).
_C.TEST.EVAL_PERIOD = 0
_C.TEST.KEYPOINT_OKS_SIGMAS = []
_C.TEST.DETECTIONS_PER_IMAGE = 100
# Test-time augmentation (multi-scale + flip).
_C.TEST.AUG = CN({"ENABLED": False})
_C.TEST.AUG.MIN_SIZES = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
_C.TEST.AUG.MAX_SIZE = 4000
_C.TEST.AUG.FLIP = True
_C.TEST.PRECISE_BN = CN({"ENABLED": False})
_C.TEST.PRECISE_BN.NUM_ITER = 200
# Not in the original: reduced-precision inference. The network runs under torch.autocast in
# TEST.AMP.DTYPE ("bfloat16", or "float16" on CUDA only); post-processing stays float32.
_C.TEST.AMP = CN({"ENABLED": False})
_C.TEST.AMP.DTYPE = "bfloat16"
# Not in the original: images per forward pass in evaluation (1: one image at a time, as the
# original). A batch holds images of one original size (padding would change the outputs).
_C.TEST.IMS_PER_BATCH = 1

# ---------------------------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output"
# Negative: a different random seed per run.
_C.SEED = -1
_C.CUDNN_BENCHMARK = False
# torch float32 matmul precision ("", "highest", "high", "medium").
_C.FLOAT32_PRECISION = ""
_C.VIS_PERIOD = 0
_C.GLOBAL = CN()
_C.GLOBAL.HACK = 1.0


def get_cfg() -> CN:
    """Return a fresh copy of the default config (safe to modify).

    Returns:
        An fvcore ``CfgNode`` with every key of the original YAML files and its default.
    """
    return _C.clone()
