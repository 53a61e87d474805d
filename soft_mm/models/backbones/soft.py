# Copyright (c) soft_mm contributors. All rights reserved.
"""SOFT backbone: Softmax-free Transformer (NeurIPS 2021) and SOFT-Norm,
with its two blocks: the post-norm SOFT block of stages 1-3 and the pre-norm
class-token block of stage 4."""
import warnings
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from soft_mm.archs import ARCH_DEFAULTS, ARCH_ZOO
from ..utils import ClsAttention, ConvPatchEmbed, Mlp, SoftAttention
from ..utils.checks import (check_act_cfg, check_attn_impl, check_bool,
                            check_choice, check_int, check_int_list,
                            check_landmark_grid, check_rate, check_real,
                            is_int)

#: Side of the square input the position tables are sized for by default.
POS_EMBED_IMG_SIZE = 224

#: How SOFT blocks apply their stochastic-depth rate.
SOFT_DROP_MODES = ('dropout', 'drop_path')

#: ``interpolate_mode`` values: mmpretrain resizes the position tables with
#: ``align_corners=False``, which F.interpolate takes only for these.
INTERPOLATE_MODES = ('bilinear', 'bicubic')


def mlp_hidden_dims(owner: str, embed_dims: int, mlp_ratio) -> int:
    """The FFN width ``int(embed_dims * mlp_ratio)``, checked to be >= 1."""
    check_real(owner, 'mlp_ratio', mlp_ratio, 0., low_open=True)
    hidden = int(embed_dims * mlp_ratio)
    if hidden < 1:
        raise ValueError(f'{owner}: mlp_ratio {mlp_ratio} leaves no hidden '
                         f'channel for embed_dims {embed_dims}')
    return hidden


class SoftBlock(nn.Module):
    """Post-norm SOFT block: ``x = LN(x + Drop(Attn(x)))``, then the FFN.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        sr_ratio (int): Landmark sampling ratio.
        local_kernel (int): Local conv kernel.
        mlp_ratio (float): FFN expansion. Defaults to 4.
        drop_rate (float): Stochastic-depth rate of this block.
            Defaults to 0.
        drop_mode (str): ``'dropout'`` applies ``drop_rate`` as element-wise
            dropout on each branch (the official model's behaviour);
            ``'drop_path'`` drops whole samples. Defaults to ``'dropout'``.
        act_cfg (dict): FFN activation. Defaults to tanh-approximate GELU,
            as the official model.
        norm_eps (float): LayerNorm eps. Defaults to 1e-5.
        **attn_kwargs: Passed to :class:`SoftAttention`.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 sr_ratio: int,
                 local_kernel: int,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_mode: str = 'dropout',
                 act_cfg: dict = dict(type='GELU', approximate='tanh'),
                 norm_eps: float = 1e-5,
                 **attn_kwargs):
        super().__init__()
        owner = 'SoftBlock'
        check_choice(owner, 'drop_mode', drop_mode, SOFT_DROP_MODES)
        check_rate(owner, 'drop_rate', drop_rate)
        check_act_cfg(owner, 'act_cfg', act_cfg)
        check_real(owner, 'norm_eps', norm_eps, 0., low_open=True)
        self.attn = SoftAttention(embed_dims, num_heads, sr_ratio,
                                  local_kernel, **attn_kwargs)
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = Mlp(embed_dims,
                       mlp_hidden_dims(owner, embed_dims, mlp_ratio),
                       act_cfg)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        if drop_mode == 'dropout':
            self.drop = nn.Dropout(drop_rate)
        else:
            self.drop = DropPath(drop_rate)

    def forward(self, x: Tensor, hw_shape: Sequence[int]) -> Tensor:
        x = self.norm1(x + self.drop(self.attn(x, hw_shape)))
        return self.norm2(x + self.drop(self.ffn(x)))


class ClsBlock(nn.Module):
    """Pre-norm block: ``x + DropPath(Attn(LN(x)))``, then
    ``x + DropPath(MLP(LN(x)))``.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Heads.
        mlp_ratio (float): MLP expansion. Defaults to 4.
        drop_path_rate (float): DropPath rate of this block. Defaults to 0.
        act_cfg (dict): MLP activation. Defaults to exact GELU.
        norm_eps (float): LayerNorm eps. Defaults to 1e-6.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_eps: float = 1e-6):
        super().__init__()
        owner = 'ClsBlock'
        check_rate(owner, 'drop_path_rate', drop_path_rate)
        check_act_cfg(owner, 'act_cfg', act_cfg)
        check_real(owner, 'norm_eps', norm_eps, 0., low_open=True)
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ClsAttention(embed_dims, num_heads)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = Mlp(embed_dims,
                       mlp_hidden_dims(owner, embed_dims, mlp_ratio),
                       act_cfg)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@MODELS.register_module()
class SOFT(BaseBackbone):
    """SOFT: Softmax-free Transformer with linear complexity.

    Four stages at strides 4/8/16/32. Stages 1-3 are post-norm SOFT blocks
    (Gaussian-kernel attention with a Newton-inverted landmark kernel);
    stage 4 is a pre-norm softmax block over ``[cls; tokens]``. See
    ``docs/design.md`` for the design.

    Args:
        arch (str | dict): One of ``'tiny'``, ``'small'``, ``'medium'``,
            ``'large'``, ``'huge'``, or a dict with the required keys
            ``embed_dims``, ``num_heads``, ``depths`` (4 values each) and the
            optional keys ``sr_ratios``, ``local_kernels`` (3 values),
            ``mlp_ratio`` (stage 4), ``soft_mlp_ratio`` (stages 1-3) and
            ``stem_channels``. Defaults to ``'tiny'``.
        in_channels (int): Input channels. Defaults to 3.
        img_size (int | tuple): Input size ``(H, W)`` the position tables
            are sized for; other sizes resize them on the fly. A checkpoint
            with tables of another size is resized once, when it is loaded
            through ``init_cfg=dict(type='Pretrained', ...)``.
            Defaults to 224.
        attn_norm (bool): Use SOFT-Norm (symmetric degree normalisation of
            the landmark inverse). Defaults to False.
        attn_impl (str): Implementation of the attention core
            (``'auto'``, ``'reference'``, or a device kernel), see
            :func:`soft_mm.ops.soft_attention`. Defaults to ``'auto'``.
        newton_iters (int): Newton iterations. Defaults to 20.
        landmark_grid (int | tuple, optional): Bound the landmarks of every
            SOFT block to this grid (linear cost at detection resolution);
            ``None`` is the official fixed sampling ratio. Defaults to None.
        out_indices (Sequence[int] | int): Stages to output (0-3, negative
            values count from the end). Defaults to -1.
        out_type (str): Output of the last stage: ``'cls_token'`` (the
            official classifier input, ``(B, C)``), ``'featmap'`` (NCHW,
            cls token dropped) or ``'avg_featmap'`` (``(B, C)`` mean of the
            patch tokens). Stages 1-3 always give NCHW maps.
            Defaults to ``'cls_token'``.
        drop_path_rate (float): Stochastic-depth rate in ``[0, 1)``, spread
            with ``linspace(0, rate, sum(depths))`` over all blocks (1 would
            give the last block a DropPath that divides by zero).
            Defaults to 0.1.
        soft_drop_mode (str): How SOFT blocks apply their rate:
            ``'dropout'`` (official element-wise dropout) or ``'drop_path'``.
            Stage 4 always uses DropPath. Defaults to ``'dropout'``.
        frozen_stages (int): Stages ``0..frozen_stages`` (with their patch
            embeddings and position tables; stage 3 also the cls token and
            final norm) are frozen. -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Activation checkpointing per block. Defaults to False.
        interpolate_mode (str): How position tables are resized to the
            actual feature size, ``'bilinear'`` or ``'bicubic'``.
            Defaults to ``'bilinear'``.
        conv_bias (bool): Bias in the patch-embedding convs. Defaults to True.
        soft_act_cfg (dict): Activation of the SOFT-block FFN.
            Defaults to tanh-approximate GELU (official).
        landmark_act_cfg (dict): Activation after the landmark LayerNorm.
            Defaults to exact GELU.
        cls_act_cfg (dict): Activation of the stage-4 MLP.
            Defaults to exact GELU.
        cls_norm_eps (float): LayerNorm eps of the stage-4 blocks.
            Defaults to 1e-6.
        init_cfg (dict | list, optional): Initialisation config.

    Every argument is validated when the backbone is built; a bad one raises
    a ``TypeError`` or ``ValueError`` that names it (or its arch key).
    """
    arch_zoo = ARCH_ZOO
    arch_defaults = ARCH_DEFAULTS
    num_stages = 4
    OUT_TYPES = ('cls_token', 'featmap', 'avg_featmap')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 img_size: Union[int, Tuple[int, int]] = POS_EMBED_IMG_SIZE,
                 attn_norm: bool = False,
                 attn_impl: str = 'auto',
                 newton_iters: int = 20,
                 landmark_grid: Optional[Union[int, Tuple[int, int]]] = None,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 drop_path_rate: float = 0.1,
                 soft_drop_mode: str = 'dropout',
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 interpolate_mode: str = 'bilinear',
                 conv_bias: bool = True,
                 soft_act_cfg: dict = dict(type='GELU', approximate='tanh'),
                 landmark_act_cfg: dict = dict(type='GELU'),
                 cls_act_cfg: dict = dict(type='GELU'),
                 cls_norm_eps: float = 1e-6,
                 init_cfg: Optional[Union[dict, list]] = [
                     dict(type='TruncNormal', layer='Linear', std=.02,
                          bias=0.),
                     dict(type='Constant', layer='LayerNorm', val=1.,
                          bias=0.)
                 ]):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        arch = self.arch_settings
        self.embed_dims = arch['embed_dims']
        self.depths = arch['depths']
        self.out_indices = self.parse_out_indices(out_indices)
        # Every argument is checked here, each error naming it, so that a
        # bad config fails when the model is built, not at the first step.
        self.in_channels = check_int('SOFT', 'in_channels', in_channels)
        img_size = (img_size, img_size) if is_int(img_size) else img_size
        self.img_size = tuple(check_int_list('SOFT', 'img_size', img_size, 2))
        check_bool('SOFT', 'attn_norm', attn_norm)
        check_attn_impl('SOFT', attn_impl)
        check_int('SOFT', 'newton_iters', newton_iters, 0)
        check_landmark_grid('SOFT', landmark_grid)
        self.out_type = check_choice('SOFT', 'out_type', out_type,
                                     self.OUT_TYPES)
        check_rate('SOFT', 'drop_path_rate', drop_path_rate)
        check_choice('SOFT', 'soft_drop_mode', soft_drop_mode,
                     SOFT_DROP_MODES)
        if not is_int(frozen_stages) or not (-1 <= frozen_stages <
                                             self.num_stages):
            raise ValueError('SOFT: frozen_stages must be an int in [-1, 3], '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = check_bool('SOFT', 'norm_eval', norm_eval)
        self.with_cp = check_bool('SOFT', 'with_cp', with_cp)
        self.interpolate_mode = check_choice('SOFT', 'interpolate_mode',
                                             interpolate_mode,
                                             INTERPOLATE_MODES)
        check_bool('SOFT', 'conv_bias', conv_bias)
        for name, cfg in (('soft_act_cfg', soft_act_cfg),
                          ('landmark_act_cfg', landmark_act_cfg),
                          ('cls_act_cfg', cls_act_cfg)):
            check_act_cfg('SOFT', name, cfg)
        check_real('SOFT', 'cls_norm_eps', cls_norm_eps, 0., low_open=True)

        stem_ch = arch['stem_channels']
        self.patch_embeds = nn.ModuleList([
            ConvPatchEmbed(
                in_channels,
                self.embed_dims[0],
                mid_channels=(stem_ch, stem_ch),
                strides=(2, 1, 2),
                bias=conv_bias)
        ] + [
            ConvPatchEmbed(c_in, c_out, bias=conv_bias)
            for c_in, c_out in zip(self.embed_dims[:-1], self.embed_dims[1:])
        ])

        # Each stride-2 unit maps a side s to ceil(s / 2): the stem has two.
        self.pos_shapes, shape = [], self.img_size
        for i in range(self.num_stages):
            for _ in range(2 if i == 0 else 1):
                shape = tuple(-(-s // 2) for s in shape)
            self.pos_shapes.append(shape)
        self.pos_embeds = nn.ParameterList([
            nn.Parameter(
                torch.zeros(1, h * w + int(i == self.num_stages - 1), c))
            for i, ((h, w), c) in enumerate(zip(self.pos_shapes,
                                                self.embed_dims))
        ])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims[-1]))

        # On the CPU: a model built under torch.device('meta') too.
        rates = torch.linspace(0, drop_path_rate, sum(self.depths),
                               device='cpu').tolist()
        self.stages = nn.ModuleList()
        for i, (dims, heads, depth) in enumerate(
                zip(self.embed_dims, arch['num_heads'], self.depths)):
            stage_rates = rates[sum(self.depths[:i]):sum(self.depths[:i + 1])]
            if i < self.num_stages - 1:
                blocks = [
                    SoftBlock(
                        dims,
                        heads,
                        sr_ratio=arch['sr_ratios'][i],
                        local_kernel=arch['local_kernels'][i],
                        mlp_ratio=arch['soft_mlp_ratio'],
                        drop_rate=rate,
                        drop_mode=soft_drop_mode,
                        act_cfg=soft_act_cfg,
                        attn_norm=attn_norm,
                        newton_iters=newton_iters,
                        attn_impl=attn_impl,
                        landmark_grid=landmark_grid,
                        landmark_act_cfg=landmark_act_cfg)
                    for rate in stage_rates
                ]
            else:
                blocks = [
                    ClsBlock(
                        dims,
                        heads,
                        mlp_ratio=arch['mlp_ratio'],
                        drop_path_rate=rate,
                        act_cfg=cls_act_cfg,
                        norm_eps=cls_norm_eps) for rate in stage_rates
                ]
            self.stages.append(nn.ModuleList(blocks))
        self.norm = nn.LayerNorm(self.embed_dims[-1], eps=1e-6)
        self._newton_warned = False

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Validate ``arch`` and fill in the optional settings."""
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise KeyError(f'SOFT: unknown arch {arch!r}, choose from '
                               f'{sorted(cls.arch_zoo)} or pass a dict')
            arch = cls.arch_zoo[arch.lower()]
        elif not isinstance(arch, dict):
            raise TypeError('SOFT: arch must be a str or a dict, got '
                            f'{type(arch).__name__}')
        required = {'embed_dims', 'num_heads', 'depths'}
        missing = required - set(arch)
        if missing:
            raise KeyError(f'SOFT: custom arch is missing {sorted(missing)}; '
                           f'it needs {sorted(required)}')
        unknown = set(arch) - required - set(cls.arch_defaults)
        if unknown:
            raise KeyError(f'SOFT: unknown arch keys {sorted(unknown)}; '
                           f'allowed: {sorted(required)} and optional '
                           f'{sorted(cls.arch_defaults)}')
        settings = {**cls.arch_defaults, **arch}
        owner, n = 'SOFT', cls.num_stages
        # (key, values, smallest value, odd): 4 values for the per-stage
        # keys, 3 (stages 1-3) for the SOFT-attention ones.
        for key, length, low, odd in (('embed_dims', n, 1, False),
                                      ('num_heads', n, 1, False),
                                      ('depths', n, 1, False),
                                      ('sr_ratios', n - 1, 1, False),
                                      ('local_kernels', n - 1, 1, True)):
            settings[key] = check_int_list(owner, f'arch[{key!r}]',
                                           settings[key], length, low, odd)
        for i, (dims, heads) in enumerate(
                zip(settings['embed_dims'], settings['num_heads'])):
            if dims % heads:
                raise ValueError(
                    f"SOFT: arch['num_heads'][{i}] = {heads} does not divide "
                    f"arch['embed_dims'][{i}] = {dims}")
        for key in ('mlp_ratio', 'soft_mlp_ratio'):
            check_real(owner, f'arch[{key!r}]', settings[key], 0.,
                       low_open=True)
        settings['stem_channels'] = check_int(owner, "arch['stem_channels']",
                                              settings['stem_channels'])
        return settings

    def parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise TypeError('SOFT: out_indices must be an int or a non-empty '
                            f'sequence of ints, got {out_indices!r}')
        parsed = []
        for index in out_indices:
            if not is_int(index):
                raise TypeError('SOFT: out_indices must be an int or a '
                                f'sequence of ints, got {out_indices!r}')
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'SOFT: out_indices {out_indices} has '
                                 f'{index}, outside [-4, 3]')
            parsed.append(index % self.num_stages)
        return tuple(sorted(set(parsed)))

    #: How a ``Pretrained`` entry of ``init_cfg`` is loaded:
    #: ``loader(backbone, pretrained_cfg)``. :mod:`soft_mm.checkpoint` sets
    #: it when soft_mm is imported (strict, reported, position tables
    #: resized to ``img_size``); None leaves it to mmengine's
    #: ``PretrainedInit``, which loads what fits and warns about the rest.
    pretrained_loader: Optional[Callable] = None

    def init_weights(self):
        """Position tables and cls token truncated-normal (std 0.02), then
        ``init_cfg``, a ``Pretrained`` entry last (whether ``init_cfg`` is
        that dict or a list holding it anywhere), through
        :attr:`pretrained_loader`. Nothing is redrawn once the module is
        initialised.
        """
        if self._is_init:
            return super().init_weights()
        for pos_embed in self.pos_embeds:
            trunc_normal_(pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        loader = type(self).pretrained_loader
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [
            self.init_cfg] if self.init_cfg else []
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if loader is None or not pretrained:
            return super().init_weights()
        original = self.init_cfg
        self.init_cfg = [c for c in cfgs if c.get('type') != 'Pretrained']
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            loader(self, cfg)

    def add_pos_embed(self, x: Tensor, stage: int,
                      hw_shape: Tuple[int, int]) -> Tensor:
        """Add stage ``stage``'s position table resized to ``hw_shape``."""
        extra = int(stage == self.num_stages - 1)
        pos_embed = resize_pos_embed(
            self.pos_embeds[stage],
            self.pos_shapes[stage],
            hw_shape,
            mode=self.interpolate_mode,
            num_extra_tokens=extra)
        return x + pos_embed

    def run_block(self, block: nn.Module, *args) -> Tensor:
        if self.with_cp and self.training and args[0].requires_grad:
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Run the backbone on images ``x`` (B, C, H, W).

        A batch of 0 images gives empty outputs of the usual shapes.

        Returns:
            tuple[Tensor]: One output per entry of ``out_indices``.
        """
        self.check_input(x)
        outs = []
        B = x.shape[0]
        for i, (patch_embed, blocks) in enumerate(
                zip(self.patch_embeds, self.stages)):
            x, hw_shape = patch_embed(x)
            last = i == self.num_stages - 1
            if last:
                x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
            x = self.add_pos_embed(x, i, hw_shape)
            if not last:
                self.warn_if_newton_dominates(i, hw_shape)
            for block in blocks:
                x = self.run_block(block, x) if last else self.run_block(
                    block, x, hw_shape)
            if last:
                x = self.norm(x)
                if i in self.out_indices:
                    outs.append(self.format_last_stage(x, hw_shape))
            else:
                x = x.transpose(1, 2).reshape(B, x.shape[2], *hw_shape)
                if i in self.out_indices:
                    outs.append(x)
        return tuple(outs)

    #: Newton work (multiply-accumulates per image and block) below which
    #: :meth:`warn_if_newton_dominates` stays quiet.
    NEWTON_WARN_MACS = 10**8

    def warn_if_newton_dominates(self, stage: int,
                                 hw_shape: Tuple[int, int]) -> None:
        """Say once when the landmark count makes the m x m Newton work
        outweigh the rest of a SOFT block (official landmark ratios at high
        resolution: ``m`` grows with the image, the Newton work with
        ``m^3``), with the numbers and the ``landmark_grid`` remedy."""
        if self._newton_warned or torch.compiler.is_compiling():
            return
        attn = self.stages[stage][0].attn
        newton, rest = attn.newton_macs(hw_shape)
        channels = self.embed_dims[stage]
        rest += (2 * self.arch_settings['soft_mlp_ratio'] * hw_shape[0] *
                 hw_shape[1] * channels**2)  # the FFN
        # Below NEWTON_WARN_MACS the Newton work is negligible whatever
        # its share (tiny inputs, toy archs).
        if newton <= rest or newton < self.NEWTON_WARN_MACS:
            return
        self._newton_warned = True
        m, (h, w) = attn.landmark_count(hw_shape), hw_shape
        warnings.warn(
            f'SOFT: at this input, stage {stage + 1} ({h}x{w} tokens, '
            f'landmark ratio {attn.sr_ratio}) attends through m = {m} '
            f'landmarks per head: its {attn.newton_iters} Newton steps on '
            f'{m}x{m} matrices ({newton / 1e9:.2f} GMACs) outweigh the rest '
            f'of the block ({rest / 1e9:.2f} GMACs) and grow with the cube '
            'of the image area. For high-resolution inputs set '
            'landmark_grid (e.g. landmark_grid=7: at most 7x7 landmarks, '
            'linear cost; maps of at most 7 x ratio tokens a side are '
            'computed as before).', stacklevel=3)

    def check_input(self, x: Tensor) -> None:
        """A clear error for inputs that are not a batch of images."""
        if not isinstance(x, Tensor):
            raise TypeError('SOFT: expects a Tensor of images (B, C, H, W), '
                            f'got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError('SOFT: expects a batch of images (B, C, H, W), '
                             f'got a {x.dim()}-D tensor of shape '
                             f'{tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'SOFT: expects {self.in_channels} input '
                             f'channels (in_channels), got {x.shape[1]} in '
                             f'images of shape {tuple(x.shape)}')
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError('SOFT: images need H, W >= 1, got shape '
                             f'{tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError('SOFT: expects floating-point images, got '
                            f'{x.dtype} (normalise them first, e.g. with '
                            "the model's data_preprocessor)")

    def format_last_stage(self, x: Tensor, hw_shape: Tuple[int, int]):
        if self.out_type == 'cls_token':
            return x[:, 0]
        patch_tokens = x[:, 1:]
        if self.out_type == 'avg_featmap':
            return patch_tokens.mean(dim=1)
        return patch_tokens.transpose(1, 2).reshape(*x.shape[::2], *hw_shape)

    def _freeze_stages(self):
        for i in range(self.frozen_stages + 1):
            modules = [self.patch_embeds[i], self.stages[i]]
            params = [self.pos_embeds[i]]
            if i == self.num_stages - 1:
                modules.append(self.norm)
                params.append(self.cls_token)
            for module in modules:
                module.eval()
                params.extend(module.parameters())
            for param in params:
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Layer-wise depth of a parameter, for layer-wise lr decay.

        The stem is depth 0, blocks count from 1 in order, the patch
        embedding and position table of stage ``i`` share the depth of the
        last block before it, and everything after the backbone (final norm,
        head) is ``num_layers - 1``.

        Args:
            param_name (str): The name of the parameter.
            prefix (str): The prefix of the backbone's parameters.

        Returns:
            Tuple[int, int]: The layer depth and the number of layers.
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):].split('.')
        if name[0] in ('patch_embeds', 'pos_embeds'):
            layer_depth = sum(self.depths[:int(name[1])])
        elif name[0] == 'cls_token':
            layer_depth = sum(self.depths[:self.num_stages - 1])
        elif name[0] == 'stages':
            stage, block = int(name[1]), int(name[2])
            layer_depth = sum(self.depths[:stage]) + block + 1
        else:
            layer_depth = num_layers - 1
        return layer_depth, num_layers
