# Copyright (c) soft_mm contributors. All rights reserved.
"""Parameters and multiply-accumulates of a classifier, stage by stage.

Example::

    python tools/analysis_tools/get_flops.py \
        configs/_base_/models/soft/soft-tiny.py --shape 224 224

Uses mmengine's jit FlopAnalyzer with explicit handles for the ops it would
drop (SOFT's distance products, the Newton iterations, stage-4 softmax
attention), see :mod:`soft_mm.apis.complexity`. SOFT backbones are
traced with ``attn_impl='reference'`` (same math as the kernels). Counts are
multiply-accumulates, the papers' "FLOPs"; element-wise ops (exp, GELU,
adds) are not counted, as usual.
"""
import argparse
import sys
from collections import OrderedDict

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import DictAction

from soft_mm.apis.complexity import DISTANCE, NEWTON, soft_flop_handles
from soft_mm.apis.deploy import TensorForward
from soft_mm.apis.inference import build_classifier
from soft_mm.models.utils import SoftAttention
from soft_mm.runner import ConfigError, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Count params and FLOPs')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[224, 224],
        metavar=('H', 'W'), help='input size (default 224 224)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (mmengine DictAction)')
    return parser.parse_args(argv)


def build_model(config: str, cfg_options=None):
    """Build the config's model in eval mode with the reference SOFT op."""
    return build_classifier(load_config(config, cfg_options))


def newton_iters_of(model) -> int:
    """The Newton iteration count shared by the model's SOFT blocks."""
    iters = {m.newton_iters for m in model.modules()
             if isinstance(m, SoftAttention)}
    if len(iters) > 1:
        raise ValueError(f'SOFT blocks disagree on newton_iters: {iters}')
    return iters.pop() if iters else 0


def stage_parts(model) -> 'OrderedDict[str, list]':
    """Table rows: name to the module prefixes (as traced) they cover."""
    backbone = getattr(model, 'backbone', None)
    parts = OrderedDict()
    if backbone is not None and hasattr(backbone, 'patch_embeds'):
        for i in range(len(backbone.stages)):
            parts[f'stage {i + 1}'] = [
                f'model.backbone.patch_embeds.{i}',
                f'model.backbone.stages.{i}'
            ]
        parts['norm + neck + head'] = [
            'model.backbone.norm', 'model.neck', 'model.head'
        ]
    return parts


def count(model, shape):
    """Run the analysis.

    Returns:
        tuple: ``(analyzer, total, by_operator)``.
    """
    analyzer = FlopAnalyzer(TensorForward(model),
                            (torch.randn(1, 3, *shape), ))
    analyzer.set_op_handle(**soft_flop_handles(newton_iters_of(model)))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer, analyzer.total(), analyzer.by_operator()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = build_model(args.config, args.cfg_options)
    except (ConfigError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    with torch.no_grad():
        analyzer, total, by_op = count(model, args.shape)
    n_params = sum(p.numel() for p in model.parameters())
    by_module_op = analyzer.by_module_and_operator()
    h, w = args.shape
    print(f'config: {args.config}')
    print(f'input: 1 x 3 x {h} x {w}')
    print(f'params: {n_params / 1e6:.3f} M')
    print(f'FLOPs (multiply-accumulates): {total / 1e9:.3f} G')
    newton = by_op.get(NEWTON, 0)
    if newton:
        print(f'  of which SOFT Newton iterations ({newton_iters_of(model)} '
              f'steps): {newton / 1e9:.3f} G; without them '
              f'{(total - newton) / 1e9:.3f} G')
    print('by operator (G): ' + ', '.join(
        f'{k} {v / 1e9:.3f}' for k, v in sorted(by_op.items(),
                                                key=lambda kv: -kv[1])))
    parts = stage_parts(model)
    if parts:
        header = (f'| {"part":<20} | {"params (M)":>10} | {"FLOPs (G)":>9} |'
                  f' {"SOFT core (G)":>13} | {"Newton (G)":>10} |')
        print(header)
        print('|' + '|'.join('-' * (len(c)) for c in header.split('|')[1:-1])
              + '|')
        named = dict(TensorForward(model).named_parameters())
        for name, prefixes in parts.items():
            params = sum(p.numel() for n, p in named.items()
                         if any(n == pre or n.startswith(pre + '.')
                                for pre in prefixes))
            flops = sum(analyzer.total(p) for p in prefixes
                        if p in by_module_op)
            ops = [by_module_op.get(p, {}) for p in prefixes]
            core = sum(o.get(DISTANCE, 0) + o.get(NEWTON, 0) +
                       o.get('matmul', 0) for o in ops)
            newt = sum(o.get(NEWTON, 0) for o in ops)
            print(f'| {name:<20} | {params / 1e6:>10.3f} | '
                  f'{flops / 1e9:>9.3f} | {core / 1e9:>13.3f} | '
                  f'{newt / 1e9:>10.3f} |')
        pos = sum(p.numel() for n, p in named.items()
                  if 'pos_embeds' in n or n.endswith('cls_token'))
        print(f'(position tables and cls token: {pos / 1e6:.3f} M params, '
              'not in the rows; "SOFT core" = distances + kernel products '
              '+ Newton)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
